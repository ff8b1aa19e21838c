"""The budget service: the engine behind a REST API, with tenants, a durable journal and
metrics (`dpsched serve`)."""
