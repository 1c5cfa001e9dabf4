"""API tokens from the CLI (docs/security.md): a new token is printed once
and never again (not by list, not in the data directory), a duplicate name
is refused, revocation shows in the list, a user may not manage tokens,
and whoami names the caller."""
import os
import re

from harness import check, main


def data_files_contain(c, text):
    """Whether any file under the coordinator's data directory holds text."""
    needle = text.encode()
    for root, _, files in os.walk(os.path.join(c.dir, "coordinator")):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                if needle in f.read():
                    return True
    return False


def test_create_list_revoke(c):
    c.start_coordinator(secure=True)
    r = c.qanat("apitoken", "create", "dash", "--role", "admin", "--ttl", "30d")
    token = r.stdout.strip()
    check(re.fullmatch(r"qat_[A-Za-z0-9_-]{43}", token), "token: %r" % r.stdout)
    check("only time it is shown" in r.stderr, r.stderr)
    check("role admin" in r.stderr and "user dash" in r.stderr, r.stderr)
    made = c.qanat_json("apitoken", "create", "ci", "--user", "robot", "--ttl", "12h")
    check(made["token"].startswith("qat_") and made["token"] != token, "second: %s" % made)
    check(made["user"] == "robot" and made["role"] == "user", "second: %s" % made)
    check(made["expires_us"] - made["created_us"] == 12 * 3600 * 1000000, "ttl: %s" % made)
    never = c.qanat_json("apitoken", "create", "forever", "--ttl", "0")
    check(never["expires_us"] == 0, "no expiry: %s" % never)

    listed = c.qanat("apitoken", "list").stdout
    check(token not in listed and made["token"] not in listed, "list shows a token:\n" + listed)
    check(all(name in listed for name in ("dash", "ci", "forever")), listed)
    check("never" in listed, listed)
    tokens = c.qanat_json("apitoken", "list")
    check([t["name"] for t in tokens] == ["ci", "dash", "forever"], "list: %s" % tokens)
    check(all("token" not in t and not t["revoked"] for t in tokens), "list: %s" % tokens)
    # Only hashes are kept
    check(not data_files_contain(c, token[4:]), "the token is in the data directory")

    r = c.qanat("apitoken", "create", "dash", check=False)
    check(r.returncode != 0 and "exists already" in r.stderr, r.stderr)
    r = c.qanat("apitoken", "revoke", "dash")
    check("API token dash revoked" in r.stdout, r.stdout)
    dash = [t for t in c.qanat_json("apitoken", "list") if t["name"] == "dash"]
    check(len(dash) == 1 and dash[0]["revoked"], "after revoke: %s" % dash)
    check("revoked" in c.qanat("apitoken", "list").stdout, "no revoked state shown")
    r = c.qanat("apitoken", "revoke", "nobody", check=False)
    check(r.returncode != 0 and "no API token named 'nobody'" in r.stderr, r.stderr)
    # The name is free again once revoked
    again = c.qanat_json("apitoken", "create", "dash")
    check(again["token"] != token, "same token twice")
    # Survives a restart, as hashes
    c.kill_coordinator()
    c.start_coordinator(secure=True)
    check(len(c.qanat_json("apitoken", "list")) == 4, "tokens lost in a restart")


def test_hostile_names_and_bad_options(c):
    c.start_coordinator(secure=True)
    for name in ("a b", "../x", "x" * 65, "", "é"):
        r = c.qanat("apitoken", "create", name, check=False)
        check(r.returncode != 0, "created %r" % name)
        check("1 to 64 letters" in r.stderr, r.stderr)
    r = c.qanat("apitoken", "create", "x", "--role", "root", check=False)
    check(r.returncode != 0 and "unknown role 'root'" in r.stderr, r.stderr)
    r = c.qanat("apitoken", "create", "x", "--ttl", "soon", check=False)
    check(r.returncode == 2 and "--ttl" in r.stderr, r.stderr)
    r = c.qanat("apitoken", "frobnicate", check=False)
    check(r.returncode == 2 and "Usage: qanat apitoken" in r.stderr, r.stderr)
    check(c.qanat_json("apitoken", "list") == [], "something was created")


def test_users_may_not_manage_tokens_and_whoami(c):
    c.start_coordinator(secure=True)
    check(c.qanat("whoami").stdout.strip() == "admin (user, role admin)",
          c.qanat("whoami").stdout)
    bob = os.path.join(c.dir, "bob.key")
    c.qanat("user", "add", "bob", "--role", "user", "--out", bob)
    c.key = bob
    for args in (["apitoken", "create", "b"], ["apitoken", "list"], ["apitoken", "revoke", "b"]):
        r = c.qanat(*args, check=False)
        check(r.returncode != 0, "bob could run %s" % args)
        check("permission denied: needs role admin" in r.stderr, r.stderr)
    check(c.qanat_json("whoami") == {"kind": "user", "name": "bob", "role": "user"},
          c.qanat("whoami").stdout)


def test_insecure_has_no_tokens(c):
    c.start_coordinator(secure=False)
    check(c.qanat("whoami").stdout.strip() == "admin (local, role admin)", "whoami")
    r = c.qanat("apitoken", "create", "x", check=False)
    check(r.returncode != 0 and "runs --insecure" in r.stderr, r.stderr)
    check(c.qanat_json("apitoken", "list") == [], "tokens listed")


if __name__ == "__main__":
    main(globals())
