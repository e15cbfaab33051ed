"""IAM's last-accessed data of a principal: ``GenerateServiceLastAccessedDetails`` starts a job,
``GetServiceLastAccessedDetails`` answers it (action-level for the services IAM tracks actions of: S3, EC2,
IAM, Lambda…; service-level for the others), as ``akeru.domain.rightsize.ServiceAccess`` items.

The job takes IAM a few seconds: ``start`` every principal first, ``read`` each after — a job not finished
yet is ``None`` (the pass goes on without it and says so).
"""

from botocore.exceptions import ClientError

from akeru.domain.rightsize import ServiceAccess

from .errors import Terminal, classify, error_code

COMPLETED, IN_PROGRESS, FAILED = "COMPLETED", "IN_PROGRESS", "FAILED"


def start(iam, arn):
    """Ask IAM for the principal's last-accessed data (action level); returns the job id."""
    try:
        return iam.generate_service_last_accessed_details(Arn=arn, Granularity="ACTION_LEVEL")["JobId"]
    except ClientError as exc:
        raise _refused(exc, "iam:GenerateServiceLastAccessedDetails") from None
    except Exception as exc:
        raise classify(exc) from None


def read(iam, job_id):
    """The ``ServiceAccess`` items of a finished job, or None while IAM is still at it. A failed job is a
    ``Terminal`` with IAM's message."""
    services, marker = [], None
    while True:
        kwargs = {"JobId": job_id, "MaxItems": 1000, **({"Marker": marker} if marker else {})}
        try:
            answer = iam.get_service_last_accessed_details(**kwargs)
        except ClientError as exc:
            raise _refused(exc, "iam:GetServiceLastAccessedDetails") from None
        except Exception as exc:
            raise classify(exc) from None
        status = answer.get("JobStatus")
        if status == IN_PROGRESS:
            return None
        if status == FAILED:
            raise Terminal(f"IAM's last-accessed job failed: {(answer.get('Error') or {}).get('Message', '')}")
        services.extend(_service(item) for item in answer.get("ServicesLastAccessed") or ())
        if not answer.get("IsTruncated"):
            return services
        marker = answer.get("Marker")


def _service(item):
    tracked = item.get("TrackedActionsLastAccessed")
    actions = None
    if tracked is not None:
        actions = {entry["ActionName"]: entry.get("LastAccessedTime") for entry in tracked if entry.get("ActionName")}
    return ServiceAccess(item.get("ServiceNamespace", ""), item.get("LastAuthenticated"), actions)


def _refused(exc, permission):
    if error_code(exc) in ("AccessDenied", "AccessDeniedException"):
        return Terminal(f"access denied: the remote access role needs {permission}")
    return classify(exc)
