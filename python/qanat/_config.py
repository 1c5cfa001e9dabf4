"""Where the client finds its coordinator: the CLI's config file.

``$XDG_CONFIG_HOME/qanat/config.yaml`` (default
``~/.config/qanat/config.yaml``), written by ``qanat context add|use``,
in a small block-YAML subset whose values are double-quoted JSON strings,
so it is read here without a YAML library::

    current-context: "prod"
    contexts:
      "prod":
        url: "http://host:7780"
        token: "qat_..."

Precedence (as in the CLI): arguments, then ``QANAT_URL`` /
``QANAT_TOKEN``, then the context (``QANAT_CONTEXT`` picks another than
the current one), then ``http://127.0.0.1:7780`` without a token.
"""
import json
import os
from typing import Dict, Optional, Tuple

DEFAULT_URL = "http://127.0.0.1:7780"


def config_path() -> str:
    """The config file's path (it need not exist)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "qanat", "config.yaml")


def _scalar(text: str) -> str:
    text = text.strip()
    if text.startswith('"'):
        value = json.loads(text)
        if not isinstance(value, str):
            raise ValueError("not a string")
        return value
    return text


def parse_config(text: str) -> Tuple[Optional[str], Dict[str, Dict[str, str]]]:
    """(current context, {context: {key: value}}) from the file's text;
    lines it does not understand are skipped."""
    current = None
    contexts: Dict[str, Dict[str, str]] = {}
    section = None
    context = None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        key, sep, value = raw.strip().partition(":")
        if key.startswith('"'):
            # a quoted key may hold ':' itself: split after its closing quote
            try:
                end = raw.strip().index('":', 1) + 1
            except ValueError:
                continue
            key, value = raw.strip()[:end], raw.strip()[end + 1:]
            sep = ":"
        if not sep:
            continue
        try:
            key = _scalar(key)
            value = _scalar(value) if value.strip() else ""
        except ValueError:
            continue
        if indent == 0:
            section = key
            context = None
            if key == "current-context":
                current = value or None
        elif section == "contexts" and indent == 2:
            context = key
            contexts.setdefault(context, {})
        elif section == "contexts" and indent == 4 and context is not None:
            contexts[context][key] = value
    return current, contexts


def resolve(url: Optional[str] = None, token: Optional[str] = None,
            context: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """The (url, token) a Client uses, by the precedence above."""
    url = url or os.environ.get("QANAT_URL") or None
    token = token or os.environ.get("QANAT_TOKEN") or None
    if url is None or token is None:
        entry = _context_entry(context or os.environ.get("QANAT_CONTEXT") or None)
        if url is None:
            url = entry.get("url") or None
        if token is None:
            token = entry.get("token") or None
            if token is None and entry.get("token_file"):
                try:
                    with open(os.path.expanduser(entry["token_file"])) as f:
                        token = f.read().strip() or None
                except OSError:
                    token = None
    return (url or DEFAULT_URL).rstrip("/"), token


def _context_entry(name: Optional[str]) -> Dict[str, str]:
    try:
        with open(config_path(), encoding="utf-8") as f:
            current, contexts = parse_config(f.read())
    except (OSError, UnicodeDecodeError):
        return {}
    return contexts.get(name or current or "", {})
