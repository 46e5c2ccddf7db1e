"""Credentials and TLS against real registries: basic auth, docker config, helpers, login, CA files."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from modelhaul import auth, registry
from modelhaul.errors import AuthError, RegistryError
from modelhaul.registry import RegistryTarget
from modelhaul.registry_options import RegistryOptions
from tests.fixtures.registry import unique_repo


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No credentials leak in from the machine: an empty HOME, no DOCKER_CONFIG, no env credentials."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("DOCKER_CONFIG", "MODELHAUL_USERNAME", "MODELHAUL_PASSWORD", "ORMB_USERNAME",
                "ORMB_PASSWORD", "ORAS_USER", "ORAS_PASS"):
        monkeypatch.delenv(var, raising=False)
    return home


def write_config(path: Path, host: str, user: str, password: str, **extra) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}, **extra}))


def anonymous(server) -> RegistryOptions:
    return RegistryOptions(plain_http=True)


def test_no_credentials_says_to_login_without_leaking(auth_registry):
    target = RegistryTarget(auth_registry.host, unique_repo(), anonymous(auth_registry))
    with pytest.raises(AuthError) as e:
        target.list_tags()
    msg = str(e.value)
    assert auth_registry.host in msg and f"modelhaul login {auth_registry.host}" in msg
    assert "\n" not in msg


def test_wrong_password_is_refused_and_never_shown(auth_registry):
    bad = "wrong-" + auth_registry.password
    opts = RegistryOptions(plain_http=True, username=auth_registry.username, password=bad)
    with pytest.raises(AuthError, match="refused the credentials") as e:
        RegistryTarget(auth_registry.host, unique_repo(), opts).has_blob("sha256:" + "0" * 64)
    assert bad not in str(e.value) and bad not in repr(e.value)
    assert bad not in repr(opts)


def test_basic_auth_push_and_pull(auth_registry, tmp_path):
    from tests.test_registry import make_blob, push

    target = RegistryTarget(auth_registry.host, unique_repo(), auth_registry.options)
    layer = make_blob(tmp_path, 3 << 20)
    digest = push(target, [layer], "v1")
    assert target.get_manifest("v1").digest == digest
    target.fetch_blob(layer.digest, layer.size, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == layer.path.read_bytes()


def test_credentials_from_home_docker_config(auth_registry, clean_env):
    write_config(clean_env / ".docker" / "config.json", auth_registry.host, auth_registry.username,
                 auth_registry.password)
    target = RegistryTarget(auth_registry.host, unique_repo(), anonymous(auth_registry))
    assert target.has_blob("sha256:" + "0" * 64) is False  # authenticated: a plain "no"


def test_docker_config_env_var_wins_over_home(auth_registry, clean_env, tmp_path, monkeypatch):
    write_config(clean_env / ".docker" / "config.json", auth_registry.host, "nobody", "nothing")
    write_config(tmp_path / "dc" / "config.json", f"https://{auth_registry.host}/v1/",
                 auth_registry.username, auth_registry.password)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    target = RegistryTarget(auth_registry.host, unique_repo(), anonymous(auth_registry))
    assert target.has_blob("sha256:" + "0" * 64) is False


def test_credential_helper(auth_registry, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-mhtest"
    store = tmp_path / "helper-store.json"
    store.write_text(json.dumps({auth_registry.host: [auth_registry.username, auth_registry.password]}))
    helper.write_text(f"""#!{sys.executable}
import json, sys
store = {str(store)!r}
data = json.load(open(store))
verb = sys.argv[1]
if verb == "get":
    host = sys.stdin.read().strip()
    if host not in data:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps({{"ServerURL": host, "Username": data[host][0], "Secret": data[host][1]}}))
elif verb == "store":
    e = json.load(sys.stdin); data[e["ServerURL"]] = [e["Username"], e["Secret"]]
    json.dump(data, open(store, "w"))
elif verb == "erase":
    data.pop(sys.stdin.read().strip(), None); json.dump(data, open(store, "w"))
""")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    (tmp_path / "dc").mkdir()
    (tmp_path / "dc" / "config.json").write_text(json.dumps({"credHelpers": {auth_registry.host: "mhtest"}}))

    target = RegistryTarget(auth_registry.host, unique_repo(), anonymous(auth_registry))
    assert target.has_blob("sha256:" + "0" * 64) is False

    # logout erases from the helper; login stores through it (the config never holds the secret)
    assert auth.logout(auth_registry.host)
    assert json.loads(store.read_text()) == {}
    with pytest.raises(AuthError):
        RegistryTarget(auth_registry.host, unique_repo(), anonymous(auth_registry)).list_tags()
    registry.login(auth_registry.host, auth_registry.username, auth_registry.password, anonymous(auth_registry))
    assert json.loads(store.read_text())[auth_registry.host][1] == auth_registry.password
    assert auth_registry.password not in (tmp_path / "dc" / "config.json").read_text()
    target = RegistryTarget(auth_registry.host, unique_repo(), anonymous(auth_registry))
    assert target.has_blob("sha256:" + "0" * 64) is False


def test_login_checks_then_writes_a_private_config_and_logout_forgets(auth_registry, clean_env):
    path = clean_env / ".docker" / "config.json"
    with pytest.raises(AuthError, match="refused") as e:
        registry.login(auth_registry.host, auth_registry.username, "bad-password", anonymous(auth_registry))
    assert "bad-password" not in str(e.value)
    assert not path.exists()

    written = registry.login(auth_registry.host, auth_registry.username, auth_registry.password,
                         anonymous(auth_registry))
    assert written == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth.credentials_for(auth_registry.host) == (auth_registry.username, auth_registry.password)
    RegistryTarget(auth_registry.host, unique_repo(), anonymous(auth_registry)).has_blob("sha256:" + "0" * 64)

    assert auth.logout(auth_registry.host) is True
    assert auth.credentials_for(auth_registry.host) is None
    assert auth.logout(auth_registry.host) is False


def test_tls_with_the_test_ca(tls_registry, tmp_path):
    from tests.test_registry import make_blob, push

    target = RegistryTarget(tls_registry.host, unique_repo(), tls_registry.options)
    assert target.base.startswith("https://")
    layer = make_blob(tmp_path, 1 << 20)
    digest = push(target, [layer], "v1")
    assert target.get_manifest("v1").digest == digest


def test_tls_is_verified_by_default(tls_registry):
    target = RegistryTarget(tls_registry.host, unique_repo(), RegistryOptions())
    with pytest.raises(RegistryError, match=r"TLS failed.*CERTIFICATE_VERIFY_FAILED.*ca_file.*--insecure"):
        target.list_tags()
    insecure = RegistryTarget(tls_registry.host, unique_repo(), RegistryOptions(insecure=True))
    assert insecure.has_blob("sha256:" + "0" * 64) is False


def test_https_to_a_plain_http_registry_suggests_plain_http(registry):
    target = RegistryTarget(registry.host, unique_repo(), RegistryOptions())
    with pytest.raises(RegistryError, match="--plain-http"):
        target.list_tags()


def test_bearer_tokens_anonymous_pull_and_authenticated_push(token_registry, tmp_path):
    from tests.test_registry import make_blob, push

    tokens = token_registry.token_server
    repo = unique_repo()
    layer = make_blob(tmp_path, 1 << 20)
    digest = push(RegistryTarget(token_registry.host, repo, token_registry.options), [layer], "v1")
    granted = [(user, {a for sc in scopes for a in sc.rsplit(":", 1)[1].split(",")})
               for user, scopes in tokens.issued]
    assert (token_registry.username, {"pull", "push"}) in granted  # the registry orders actions freely

    tokens.issued.clear()
    reader = RegistryTarget(token_registry.host, repo, anonymous(token_registry))
    assert reader.get_manifest("v1").digest == digest
    reader.fetch_blob(layer.digest, layer.size, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == layer.path.read_bytes()
    assert tokens.issued == [(None, [f"repository:{repo}:pull"])]  # one anonymous token, reused

    hint = f"requires authentication; run `modelhaul login {token_registry.host}`"
    with pytest.raises(AuthError, match=hint):
        reader.put_blob(make_blob(tmp_path, 100, "new"))
    bad = RegistryOptions(plain_http=True, username=token_registry.username, password="nope-nope")
    with pytest.raises(AuthError, match="refused the credentials") as e:
        RegistryTarget(token_registry.host, repo, bad).list_tags()
    assert "nope-nope" not in str(e.value)


def test_bearer_token_covers_both_repositories_of_a_mount(token_registry, tmp_path):
    from tests.test_registry import make_blob

    src, dst = unique_repo("src"), unique_repo("dst")
    layer = make_blob(tmp_path, 1 << 20)
    RegistryTarget(token_registry.host, src, token_registry.options).put_blob(layer)
    target = RegistryTarget(token_registry.host, dst, token_registry.options)
    assert target.mount_blob(layer.digest, src) is True
    def parsed(scopes: list[str]) -> dict[str, set[str]]:
        return {sc.rsplit(":", 1)[0]: set(sc.rsplit(":", 1)[1].split(",")) for sc in scopes}

    want = {f"repository:{dst}": {"pull", "push"}, f"repository:{src}": {"pull"}}
    assert any(parsed(scopes) == want for _, scopes in token_registry.token_server.issued)
    assert RegistryTarget(token_registry.host, dst, token_registry.options).has_blob(layer.digest)
