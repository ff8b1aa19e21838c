"""The HTTP routes, one router per resource. Paths, methods, parameters, status codes and
JSON keys are a contract. A handler parses its input, hands one plain function to the
writer (`Runtime.run`) and formats the answer; the rules live in `service.operations`
and `service.queries`."""
