"""The deployment scripts run for real, against stand-ins for azd, the CLI and the deployed API."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.infra.repo import INFRA

SCRIPTS = INFRA / "scripts"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def run_script(
    script: str, *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def fake_command(directory: Path, name: str, body: str) -> None:
    """An executable `name` on PATH that records its arguments in `name`.calls."""
    path = directory / name
    path.write_text(
        "#!/usr/bin/env bash\n"
        f'calls="{directory}/{name}.calls"\n'
        'echo "$*" >>"$calls"\n'
        'count=$(wc -l <"$calls")\n' + body
    )
    path.chmod(0o755)


def calls(directory: Path, name: str) -> list[str]:
    path = directory / f"{name}.calls"
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    return directory


def base_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        # The stand-ins first; then this interpreter's directory, for the scripts' python3.
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(bin_dir.parent),
        "LANG": "C.UTF-8",
    }
    env.update(extra)
    return env


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.sh")))
def test_script_is_valid_bash(script: str) -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPTS / script)], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr


# ---- postprovision.sh ----


def postprovision_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    return base_env(
        bin_dir,
        AZURE_STORAGE_TABLE_ENDPOINT="https://stx.table.core.windows.net/",
        AZURE_STORAGE_BLOB_ENDPOINT="https://stx.blob.core.windows.net/",
        RBAC_RETRY_FIRST_DELAY="0",
        **extra,
    )


def fake_cli(bin_dir: Path, failures: int) -> None:
    """`uploadsession` that fails `failures` times as storage does before RBAC applies."""
    fake_command(
        bin_dir,
        "uploadsession",
        'env | grep "^UPLOADSESSION_STORAGE" | sort >"$calls.env"\n'
        f'if [ "$count" -le {failures} ]; then\n'
        '  echo "AuthorizationPermissionMismatch: This request is not authorized" >&2; exit 1\n'
        "fi\n",
    )


def test_postprovision_without_a_tenant_activates_nothing(bin_dir: Path) -> None:
    fake_cli(bin_dir, failures=0)
    result = run_script("postprovision.sh", env=postprovision_env(bin_dir))
    assert result.returncode == 0, result.stderr
    assert "ACTIVATE_TENANT_ID" in result.stderr
    assert calls(bin_dir, "uploadsession") == []


def test_postprovision_refuses_a_tenant_that_is_not_a_guid(bin_dir: Path) -> None:
    fake_cli(bin_dir, failures=0)
    result = run_script(
        "postprovision.sh", env=postprovision_env(bin_dir, ACTIVATE_TENANT_ID="contoso.com")
    )
    assert result.returncode == 2
    assert calls(bin_dir, "uploadsession") == []


def test_postprovision_retries_until_the_role_assignments_apply(bin_dir: Path) -> None:
    fake_cli(bin_dir, failures=2)
    env = postprovision_env(
        bin_dir,
        ACTIVATE_TENANT_ID=TENANT,
        # A developer's Azurite connection string must not redirect the activation.
        UPLOADSESSION_STORAGE="UseDevelopmentStorage=true",
        UPLOADSESSION_STORAGE__clientId="the-function-apps-identity",
    )
    result = run_script("postprovision.sh", env=env)
    assert result.returncode == 0, result.stderr
    assert calls(bin_dir, "uploadsession") == [f"subscription activate {TENANT}"] * 3
    assert (bin_dir / "uploadsession.calls.env").read_text().splitlines() == [
        "UPLOADSESSION_STORAGE__blobServiceUri=https://stx.blob.core.windows.net/",
        "UPLOADSESSION_STORAGE__tableServiceUri=https://stx.table.core.windows.net/",
    ]
    assert "attempt 2 failed" in result.stderr
    assert f"tenant {TENANT} is active" in result.stderr


def test_postprovision_gives_up_after_its_deadline(bin_dir: Path) -> None:
    fake_cli(bin_dir, failures=1000)
    env = postprovision_env(bin_dir, ACTIVATE_TENANT_ID=TENANT, RBAC_WAIT_SECONDS="0")
    result = run_script("postprovision.sh", env=env)
    assert result.returncode == 1
    assert calls(bin_dir, "uploadsession") == [f"subscription activate {TENANT}"]
    assert "still fails" in result.stderr


def test_postprovision_needs_the_provisioned_endpoints(bin_dir: Path) -> None:
    fake_cli(bin_dir, failures=0)
    env = base_env(bin_dir, ACTIVATE_TENANT_ID=TENANT)
    result = run_script("postprovision.sh", env=env)
    assert result.returncode != 0
    assert "AZURE_STORAGE_TABLE_ENDPOINT" in result.stderr
    assert calls(bin_dir, "uploadsession") == []


# ---- deploy-with-retry.sh ----


def fake_azd(bin_dir: Path, failures: int, message: str) -> None:
    fake_command(
        bin_dir,
        "azd",
        f'if [ "$count" -le {failures} ]; then echo "{message}"; exit 1; fi\necho "Deployed"\n',
    )


RBAC_DENIAL = (
    "ERROR: failed deploying service 'api': Status: 403 (Forbidden) "
    "ErrorCode: AuthorizationPermissionMismatch"
)


def deploy_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    return base_env(bin_dir, DEPLOY_RETRY_FIRST_DELAY="0", **extra)


def test_deploy_retries_while_the_new_role_assignment_propagates(bin_dir: Path) -> None:
    fake_azd(bin_dir, failures=2, message=RBAC_DENIAL)
    result = run_script("deploy-with-retry.sh", "--no-prompt", env=deploy_env(bin_dir))
    assert result.returncode == 0, result.stderr
    assert calls(bin_dir, "azd") == ["deploy --no-prompt"] * 3
    assert "Deployed" in result.stdout


def test_deploy_does_not_retry_other_failures(bin_dir: Path) -> None:
    fake_azd(bin_dir, failures=5, message="ERROR: requirements.txt: no such package")
    result = run_script("deploy-with-retry.sh", env=deploy_env(bin_dir))
    assert result.returncode == 1
    assert calls(bin_dir, "azd") == ["deploy --no-prompt"]


def test_deploy_gives_up_after_its_attempts(bin_dir: Path) -> None:
    fake_azd(bin_dir, failures=5, message=RBAC_DENIAL)
    result = run_script("deploy-with-retry.sh", env=deploy_env(bin_dir, DEPLOY_ATTEMPTS="2"))
    assert result.returncode == 1
    assert len(calls(bin_dir, "azd")) == 2


# ---- smoke.sh against a stand-in for the deployed API ----

TOKEN = "eyJ0eXAiOiJKV1QifQ.smoke-test-token.sig"


@dataclass
class FakeApi:
    """Just enough of DESIGN.md §2-4 to tell a right smoke test from a wrong one."""

    unavailable_first: int = 0  # answer 404 this many times, as a host still starting does
    unhealthy_first: int = 0  # then 503 unhealthy this many times, as while roles propagate
    healthy: bool = True
    require_auth: bool = True
    complete_status: int = 201
    corrupt_download: bool = False
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, bytes] = field(default_factory=dict)

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        self.requests.append((method, path, headers))
        if self.unavailable_first > 0:
            self.unavailable_first -= 1
            return 404, {}, None
        if path == "/health":
            if self.unhealthy_first > 0 or not self.healthy:
                self.unhealthy_first -= 1
                return 503, {}, {"status": "unhealthy", "checks": {"tables": "unreachable"}}
            return 200, {}, {"status": "healthy"}
        if path.startswith("/blob/"):  # the short-lived URL a 302 points to: no bearer token
            blob, _, query = path.removeprefix("/blob").partition("?")
            data = self.documents.get(blob)
            if data is None or "authorization" in headers or query != "sig=fake":
                return 403, {}, None
            return 200, {}, data
        if self.require_auth and headers.get("authorization") != f"Bearer {TOKEN}":
            return (
                401,
                {"WWW-Authenticate": 'Bearer realm=""'},
                _error("InvalidAuthenticationToken"),
            )
        value = path.endswith("/$value")
        key = path.removesuffix("/$value")
        if method == "GET" and value:  # GET {D}/$value
            document = self.sessions.get(key + "/uploadSession")
            if document is None or document["data"] is None:
                return 404, {}, _error("itemNotFound")
            blob = f"/doc/{document['id']}"
            self.documents[blob] = b"corrupt" if self.corrupt_download else document["data"]
            return 302, {"Location": f"{self.origin}/blob{blob}?sig=fake"}, None
        session = self.sessions.get(key)
        if method == "PUT":
            request = json.loads(body)
            self.sessions[key] = session = {
                "id": "0b0b0b0b-0000-4000-8000-000000000001",
                "size": request["size"],
                "received": {},
                "version": 1,
                "data": None,
            }
            return 200, self._etag(session), self._json(session)
        if session is None:
            return 404, {}, _error("itemNotFound")
        if method == "GET":
            return 200, self._etag(session), self._json(session)
        if method == "DELETE":
            del self.sessions[key]
            return 204, {}, None
        if method == "POST" and value:
            if headers.get("content-type") != "application/octet-stream":
                return 415, {}, _error("invalidRequest")
            if headers.get("if-match") != self._etag(session)["ETag"]:
                return 412, {}, _error("preconditionFailed")
            start, end, size = map(
                int, headers["content-range"].removeprefix("bytes ").replace("/", "-").split("-")
            )
            if size != session["size"] or len(body) != end - start + 1:
                return 400, {}, _error("invalidRequest")
            session["received"].update(zip(range(start, end + 1), body, strict=True))
            session["version"] += 1
            done = len(session["received"]) == session["size"]
            if done and self.complete_status == 201:
                session["data"] = bytes(session["received"][i] for i in range(session["size"]))
            return (self.complete_status if done else 202), self._etag(session), self._json(session)
        return 405, {}, None

    origin: str = ""

    @staticmethod
    def _etag(session: dict[str, Any]) -> dict[str, str]:
        return {"ETag": f'"v{session["version"]}"'}

    @staticmethod
    def _json(session: dict[str, Any]) -> dict[str, Any]:
        missing = [b for b in range(session["size"]) if b not in session["received"]]
        ranges = [{"start": str(missing[0]), "end": str(missing[-1])}] if missing else []
        return {
            "id": session["id"],
            "size": session["size"],
            "missingRanges": ranges,
            "nextExpectedRanges": ranges,
        }


def _error(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": code, "innerError": {}}}


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, str]]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = fake.handle(self.command, self.path, headers, body)
            if isinstance(payload, bytes):
                data, content_type = payload, "application/octet-stream"
            else:
                data = json.dumps(payload).encode() if payload is not None else b""
                content_type = "application/json"
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.origin = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake, f"{fake.origin}/beta"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def smoke_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    return base_env(bin_dir, **{"SMOKE_POLL_SECONDS": "0", "SMOKE_WAIT_SECONDS": "30", **extra})


def test_smoke_runs_a_whole_upload_session_with_a_token(
    bin_dir: Path, api: tuple[FakeApi, str]
) -> None:
    fake, base = api
    result = run_script("smoke.sh", base + "/", env=smoke_env(bin_dir, SMOKE_TOKEN=TOKEN))
    assert result.returncode == 0, result.stderr
    assert [
        (method, path.split("?")[0].rsplit("/", 1)[-1]) for method, path, _ in fake.requests
    ] == [
        ("GET", "health"),
        ("GET", "uploadSession"),
        ("PUT", "uploadSession"),
        ("POST", "$value"),
        ("GET", "uploadSession"),
        ("POST", "$value"),
        ("GET", "$value"),
        ("GET", "0b0b0b0b-0000-4000-8000-000000000001"),
        ("DELETE", "uploadSession"),
        ("GET", "uploadSession"),
    ]
    assert fake.requests[0][1] == "/health"  # {base}/health: the root, not under /beta
    path = fake.requests[2][1]
    assert path.startswith("/beta/print/printers/") and "/jobs/smoke/documents/" in path
    assert fake.requests[6][1] == path.removesuffix("/uploadSession") + "/$value"
    assert [h.get("content-range") for _, _, h in fake.requests if "content-range" in h] == [
        "bytes 0-15/32",
        "bytes 16-31/32",
    ]
    assert "downloaded the committed document" in result.stderr
    assert TOKEN not in result.stdout + result.stderr
    assert "sig=fake" not in result.stdout + result.stderr


def test_smoke_gets_the_pipeline_identity_token_for_the_api_audience_by_default(
    bin_dir: Path, api: tuple[FakeApi, str]
) -> None:
    fake, base = api
    fake_command(bin_dir, "az", f'echo "{TOKEN}"\n')
    audiences = f"11111111-2222-3333-4444-555555555555, api://{TENANT}/uploadsession-api"
    result = run_script("smoke.sh", base, env=smoke_env(bin_dir, AUTH_AUDIENCES=audiences))
    assert result.returncode == 0, result.stderr
    assert calls(bin_dir, "az") == [
        f"account get-access-token --scope api://{TENANT}/uploadsession-api/.default"
        " --query accessToken --output tsv"
    ]
    assert ("DELETE", fake.requests[-2][1].rsplit("/", 1)[-1]) == ("DELETE", "uploadSession")


def test_smoke_scope_wins_over_the_audience(bin_dir: Path, api: tuple[FakeApi, str]) -> None:
    _, base = api
    fake_command(bin_dir, "az", f'echo "{TOKEN}"\n')
    env = smoke_env(bin_dir, AUTH_AUDIENCES="api://x/y", SMOKE_SCOPE="api://other/.default")
    result = run_script("smoke.sh", base, env=env)
    assert result.returncode == 0, result.stderr
    assert "--scope api://other/.default " in calls(bin_dir, "az")[0]


def test_smoke_without_any_way_to_a_token_fails(bin_dir: Path, api: tuple[FakeApi, str]) -> None:
    fake, base = api
    result = run_script("smoke.sh", base, env=smoke_env(bin_dir))
    assert result.returncode == 1
    assert "no token" in result.stderr
    assert [method for method, _, _ in fake.requests] == ["GET", "GET"]


def test_smoke_can_be_told_to_check_only_the_unauthenticated_answers(
    bin_dir: Path, api: tuple[FakeApi, str]
) -> None:
    fake, base = api
    result = run_script("smoke.sh", base, env=smoke_env(bin_dir, SMOKE_SKIP_SESSION="1"))
    assert result.returncode == 0, result.stderr
    assert fake.requests[0][1] == "/health"
    assert len(fake.requests) == 2
    assert "skipped the authenticated round trip" in result.stderr


def test_smoke_waits_for_a_starting_app_and_its_storage(
    bin_dir: Path, api: tuple[FakeApi, str]
) -> None:
    fake, base = api
    fake.unavailable_first = 2
    fake.unhealthy_first = 2
    result = run_script("smoke.sh", base, env=smoke_env(bin_dir, SMOKE_SKIP_SESSION="1"))
    assert result.returncode == 0, result.stderr
    assert [path for _, path, _ in fake.requests[:5]] == ["/health"] * 5


def test_smoke_fails_when_storage_does_not_answer(bin_dir: Path, api: tuple[FakeApi, str]) -> None:
    fake, base = api
    fake.healthy = False
    result = run_script("smoke.sh", base, env=smoke_env(bin_dir, SMOKE_WAIT_SECONDS="0"))
    assert result.returncode == 1
    assert "health: expected HTTP 200" in result.stderr and "last got 503" in result.stderr


def test_smoke_fails_when_requests_without_a_token_get_through(
    bin_dir: Path, api: tuple[FakeApi, str]
) -> None:
    fake, base = api
    fake.require_auth = False
    result = run_script("smoke.sh", base, env=smoke_env(bin_dir, SMOKE_WAIT_SECONDS="0"))
    assert result.returncode == 1
    assert "expected HTTP 401" in result.stderr


def test_smoke_fails_when_the_document_is_not_committed(
    bin_dir: Path, api: tuple[FakeApi, str]
) -> None:
    fake, base = api
    fake.complete_status = 202
    result = run_script("smoke.sh", base, env=smoke_env(bin_dir, SMOKE_TOKEN=TOKEN))
    assert result.returncode == 1
    assert "expected HTTP 201, got 202" in result.stderr


def test_smoke_fails_when_the_download_is_not_the_upload(
    bin_dir: Path, api: tuple[FakeApi, str]
) -> None:
    fake, base = api
    fake.corrupt_download = True
    result = run_script("smoke.sh", base, env=smoke_env(bin_dir, SMOKE_TOKEN=TOKEN))
    assert result.returncode == 1
    assert "not the uploaded ones" in result.stderr


def test_smoke_fails_against_nothing(bin_dir: Path) -> None:
    env = smoke_env(bin_dir, SMOKE_WAIT_SECONDS="0")
    result = run_script("smoke.sh", "http://127.0.0.1:9/beta", env=env)
    assert result.returncode == 1
    assert "last got 000" in result.stderr
