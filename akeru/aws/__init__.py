"""The only package that imports boto3."""
