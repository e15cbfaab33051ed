"""The only package that imports boto3.

``last_accessed`` asks IAM for a principal's last-accessed data (right-sizing); ``templates`` lists, reads and
(for right-sizing, conditionally) writes the template objects."""
