"""The harness shared by tests, benchmarks and the local run: endpoint, playbooks, containers."""
