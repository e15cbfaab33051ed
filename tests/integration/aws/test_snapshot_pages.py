"""The drift scan's snapshot over a GetAccountAuthorizationDetails answer that really comes in pages
(moto ignores GAAD's paging): a small HTTP stand-in for IAM answers hand-made pages with a Marker, and
devtools' proxy cuts moto_server's answer into pages; botocore's own paginator walks them. A role or
user whose managed policy comes on another page still gets it, and every page was asked for."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote

import boto3
import pytest

from akeru.aws import observe
from devtools.awsproxy import Proxy

ACCOUNT = "123456789012"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}


def _statement(action):
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}


def _arn(kind, name):
    return f"arn:aws:iam::{ACCOUNT}:{kind}/{name}"


def _doc(document):
    return quote(document if isinstance(document, str) else json.dumps(document))  # as IAM sends it


def _attached(name):
    return f"<AttachedManagedPolicies><member><PolicyName>{name}</PolicyName><PolicyArn>{_arn('policy', name)}</PolicyArn></member></AttachedManagedPolicies>"


def _role(name, trust=TRUST):
    return (f"<member><RoleName>{name}</RoleName><RoleId>AROA{name.upper()}</RoleId><Arn>{_arn('role', name)}</Arn>"
            f"<Path>/</Path><CreateDate>2026-01-01T00:00:00Z</CreateDate>"
            f"<AssumeRolePolicyDocument>{_doc(trust)}</AssumeRolePolicyDocument>{_attached(name)}"
            "<RolePolicyList/><InstanceProfileList/>"
            "<Tags><member><Key>akeru:owner</Key><Value>x</Value></member></Tags></member>")


def _user(name):
    return (f"<member><UserName>{name}</UserName><UserId>AIDA{name.upper()}</UserId><Arn>{_arn('user', name)}</Arn>"
            f"<Path>/</Path><CreateDate>2026-01-01T00:00:00Z</CreateDate>{_attached(name)}"
            f"<GroupList><member>{name}</member></GroupList><UserPolicyList/></member>")


def _policy(name, document):
    return (f"<member><PolicyName>{name}</PolicyName><PolicyId>ANPA{name.upper()}</PolicyId><Arn>{_arn('policy', name)}</Arn>"
            "<Path>/</Path><DefaultVersionId>v2</DefaultVersionId><AttachmentCount>1</AttachmentCount>"
            "<IsAttachable>true</IsAttachable><CreateDate>2026-01-01T00:00:00Z</CreateDate>"
            "<UpdateDate>2026-01-02T00:00:00Z</UpdateDate><PolicyVersionList>"
            f"<member><Document>{_doc(_statement('s3:ListBucket'))}</Document><VersionId>v1</VersionId>"
            "<IsDefaultVersion>false</IsDefaultVersion><CreateDate>2026-01-01T00:00:00Z</CreateDate></member>"
            f"<member><Document>{_doc(document)}</Document><VersionId>v2</VersionId>"
            "<IsDefaultVersion>true</IsDefaultVersion><CreateDate>2026-01-02T00:00:00Z</CreateDate></member>"
            "</PolicyVersionList></member>")


# Each principal's managed policy comes on another page than the principal; "broken" has an
# unreadable trust policy (page 1) and an unreadable managed policy (page 3).
PAGES = [
    {"RoleDetailList": _role("alice") + _role("broken", trust="[1]"), "Policies": _policy("carol", _statement("ec2:Describe*"))},
    {"RoleDetailList": _role("carol"), "UserDetailList": _user("bob"), "Policies": _policy("alice", _statement("s3:GetObject"))},
    {"GroupDetailList": "<member><GroupName>bob</GroupName><GroupId>AGPABOB</GroupId><Arn>"
                        f"{_arn('group', 'bob')}</Arn><Path>/</Path><CreateDate>2026-01-01T00:00:00Z</CreateDate>"
                        "<GroupPolicyList/><AttachedManagedPolicies/></member>",
     "Policies": _policy("bob", _statement("sqs:SendMessage")) + _policy("broken", "[2]")},
]


class PagedIAM(BaseHTTPRequestHandler):
    """Answers GetAccountAuthorizationDetails one page per Marker, as IAM does."""

    asked = []  # the Marker of each request ("" for the first)

    def do_POST(self):  # noqa: N802 - http.server's name
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        assert form["Action"] == ["GetAccountAuthorizationDetails"], form
        marker = form.get("Marker", [""])[0]
        self.asked.append(marker)
        index = int(marker or 0)
        page = PAGES[index]
        more = index + 1 < len(PAGES)
        lists = "".join(f"<{key}>{page.get(key, '')}</{key}>"
                        for key in ("RoleDetailList", "UserDetailList", "GroupDetailList", "Policies"))
        body = ('<GetAccountAuthorizationDetailsResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
                f"<GetAccountAuthorizationDetailsResult>{lists}<IsTruncated>{str(more).lower()}</IsTruncated>"
                + (f"<Marker>{index + 1}</Marker>" if more else "")
                + "</GetAccountAuthorizationDetailsResult><ResponseMetadata><RequestId>r</RequestId>"
                "</ResponseMetadata></GetAccountAuthorizationDetailsResponse>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _client(url):
    return boto3.client("iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@pytest.fixture
def paged_iam():
    PagedIAM.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), PagedIAM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield _client(f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    server.server_close()
    thread.join()


def test_principals_get_their_managed_policy_from_another_page(paged_iam):
    snap = observe.snapshot(paged_iam)

    assert PagedIAM.asked == ["", "1", "2"]  # botocore's paginator followed every Marker
    for name, is_user, action in (("alice", False, "s3:GetObject"), ("carol", False, "ec2:Describe*"),
                                  ("bob", True, "sqs:SendMessage")):
        observed = observe.from_snapshot(snap, name, is_user, _arn("policy", name))
        assert observed.exists and observed.arn == _arn("user" if is_user else "role", name)
        assert observed.attached == [_arn("policy", name)]
        assert observed.policy.default_version_id == "v2"
        assert observed.policy.document == _statement(action)
        assert [v[:2] for v in observed.policy.versions] == [("v1", False), ("v2", True)]
    alice = observe.from_snapshot(snap, "alice", False, _arn("policy", "alice"))
    assert alice.trust == TRUST and alice.tags == {"akeru:owner": "x"}
    bob = observe.from_snapshot(snap, "bob", True, _arn("policy", "bob"))
    assert bob.groups == ["bob"] and bob.group.name == "bob"  # the group came two pages later


def test_a_roles_unreadable_trust_is_its_problem_whichever_page_its_policy_came_on(paged_iam):
    snap = observe.snapshot(paged_iam)

    assert snap["problems"]["broken"].startswith("trust policy of role broken:")
    assert snap["policies"][_arn("policy", "broken")].document is None  # unreadable, not a failed scan
    assert set(snap["roles"]) == {"alice", "broken", "carol"} and set(snap["users"]) == {"bob"}


@pytest.fixture
def proxy(moto_server):
    proxy = Proxy(moto_server, latency_ms=0).start()
    yield proxy
    proxy.stop()


def test_moto_in_pages_through_the_proxy_gives_the_one_page_snapshot(aws, proxy):
    iam = _client(proxy.url)
    for name in ("alice", "carol"):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST), Tags=[{"Key": "akeru:owner", "Value": name}])
    iam.create_user(UserName="bob")
    iam.create_group(GroupName="bob")
    iam.add_user_to_group(GroupName="bob", UserName="bob")
    for name, attach in (("alice", iam.attach_role_policy), ("carol", iam.attach_role_policy),
                         ("bob", iam.attach_user_policy)):
        arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(_statement(f"s3:{name}")))["Policy"]["Arn"]
        attach(PolicyArn=arn, **({"UserName": name} if name == "bob" else {"RoleName": name}))
    whole = observe.snapshot(iam)  # moto's one page (its remote access role and policy too)

    proxy.configure(gaad_page_size=2)
    paged = observe.snapshot(iam)

    items = sum(len(whole[table]) for table in ("roles", "users", "groups", "policies"))
    assert items >= 8 and proxy.stats["gaad_pages"] == (items + 1) // 2  # 2 items a page
    assert paged == whole
    for name, is_user in (("alice", False), ("carol", False), ("bob", True)):
        observed = observe.from_snapshot(paged, name, is_user, _arn("policy", name))
        assert observed.policy.document == _statement(f"s3:{name}")
    assert observe.from_snapshot(paged, "bob", True, _arn("policy", "bob")).group.name == "bob"
