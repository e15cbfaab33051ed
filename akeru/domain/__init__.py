"""Akeru's pure core: the IAM domain types, policy documents, the planner, the ownership judge, the
reason codes and principal validation. Standard library only (see README.md)."""
