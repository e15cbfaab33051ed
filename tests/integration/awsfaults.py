"""What moto cannot do, done at the botocore boundary (never inside Akeru's code).

``aws_calls`` (fixture) wraps ``botocore.client.BaseClient._make_api_call`` for one test:

* ``aws_calls.secrets``: every secret access key IAM handed out during the test (from
  ``CreateAccessKey`` answers), so tests can grep every place a secret must never appear.
* ``aws_calls.fail(operation, code, message, times=1)``: the next ``times`` calls of ``operation``
  answer with that AWS error instead of reaching moto: IAM's eventual consistency (a new key is
  ``InvalidClientTokenId`` for a while), ``AccessDenied`` (moto does not check permissions),
  throttling.
"""

import botocore.client
import pytest
from botocore.exceptions import ClientError


class AwsCalls:
    def __init__(self):
        self.secrets = []
        self.faults = {}  # operation -> [(code, message, remaining)]
        self.counts = {}

    def fail(self, operation, code, message="injected by the test", times=1, status=400):
        self.faults.setdefault(operation, []).append([code, message, times, status])

    def before(self, operation):
        self.counts[operation] = self.counts.get(operation, 0) + 1
        for fault in self.faults.get(operation, []):
            code, message, remaining, status = fault
            if remaining > 0:
                fault[2] -= 1
                raise ClientError({"Error": {"Code": code, "Message": message},
                                   "ResponseMetadata": {"HTTPStatusCode": status}}, operation)

    def after(self, operation, answer):
        if operation == "CreateAccessKey":
            self.secrets.append(answer["AccessKey"]["SecretAccessKey"])


@pytest.fixture
def aws_calls(monkeypatch):
    calls = AwsCalls()
    real = botocore.client.BaseClient._make_api_call

    def make_api_call(client, operation_name, api_params):
        calls.before(operation_name)
        answer = real(client, operation_name, api_params)
        calls.after(operation_name, answer)
        return answer

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", make_api_call)
    return calls
