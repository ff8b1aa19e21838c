"""The Kubernetes front end: custom resources, the operator, gated Pods, Kubeflow."""
