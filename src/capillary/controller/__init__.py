"""What runs on an operator's machine against a deployment: status and submission helpers."""
