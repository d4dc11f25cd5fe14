"""The broker password and keeping it out of sight.

The password comes from a file only the service's user reads (broker_password_file, or the
systemd credential), never from the config file the operators' group can read. Every URL
that reaches a log, a dump or a repr goes through `mask_url` first.
"""

from __future__ import annotations

import os
import stat
import struct
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from pydantic import SecretStr

from printstation.agent.config.errors import ConfigError
from printstation.agent.config.nodes import join_nodes, split_nodes

if TYPE_CHECKING:
    from printstation.agent.config.settings import Settings

#: The systemd credential the unit passes: LoadCredential=broker-password:/etc/printstation/...
BROKER_PASSWORD_CREDENTIAL = "broker-password"

#: POSIX ACL entry tags and the read bit, as Linux stores them in system.posix_acl_access.
_ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK, _ACL_OTHER = 0x04, 0x08, 0x10, 0x20
_ACL_READ = 4


def _split_userinfo(url: str) -> tuple[str, str | None, str]:
    """`scheme://`, the user info (None without an `@`), and the rest, as urlsplit parts them."""
    scheme, sep, after = url.partition("://")
    if not sep:
        return url, None, ""
    ends = [i for i in (after.find(c) for c in "/?#") if i >= 0]
    end = min(ends, default=len(after))
    userinfo, at, hostport = after[:end].rpartition("@")
    if not at:
        return f"{scheme}://", None, after
    return f"{scheme}://", userinfo, hostport + after[end:]


def mask_url(value: str) -> str:
    """The URL with the password of its user info as `***`; anything else unchanged. A
    broker_url of several nodes (comma-separated) has each node's password masked."""
    if "," in value and "://" in value:
        return ",".join(_mask_one(part) for part in value.split(","))
    return _mask_one(value)


def _mask_one(value: str) -> str:
    head, userinfo, rest = _split_userinfo(value)
    if userinfo is None or ":" not in userinfo:
        return value
    return f"{head}{userinfo.partition(':')[0]}:***@{rest}"


def mask_secrets(value: Any) -> Any:
    """`mask_url` on every string in a dump, so no URL in it shows a password."""
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return mask_url(value) if isinstance(value, str) else value


def with_password(url: str, password: str) -> str:
    """The URL's user with `password`, quoted so that pika's unquoting gives it back whole;
    on every node of a broker_url of several."""
    nodes = split_nodes(url)
    if len(nodes) > 1:
        return join_nodes([with_password(node, password) for node in nodes])
    head, userinfo, rest = _split_userinfo(url)
    user = (userinfo or "").partition(":")[0]
    return f"{head}{user}:{quote(password, safe='')}@{rest}"


def _acl_readers(path: Path) -> list[str] | None:
    """Who but the owner and named users may read the file by its POSIX ACL; None: no ACL.

    With an ACL, the mode's group bits are the ACL's mask, not the group's access: systemd
    writes a credential 0400 and adds `user:SERVICE:r--`, which `stat` shows as 0440.
    """
    try:
        acl = os.getxattr(path, "system.posix_acl_access")
    except OSError:
        return None
    if len(acl) < 4 or (len(acl) - 4) % 8 or int.from_bytes(acl[:4], "little") != 2:
        return None
    entries = [struct.unpack_from("<HHI", acl, offset) for offset in range(4, len(acl), 8)]
    mask = next((perm for tag, perm, _ in entries if tag == _ACL_MASK), 7)
    readers = []
    for tag, perm, ident in entries:
        if tag == _ACL_GROUP_OBJ and perm & mask & _ACL_READ:
            readers.append("group::r")
        elif tag == _ACL_GROUP and perm & mask & _ACL_READ:
            readers.append(f"group:{_group_name(ident)}:r")
        elif tag == _ACL_OTHER and perm & _ACL_READ:
            readers.append("other::r")
    return readers


def readable_by_others(path: Path, mode: int) -> str | None:
    """Why group or others can read the file (with the fix), or None when they cannot."""
    readers = _acl_readers(path)
    if readers is None:
        if mode & 0o044:
            return f"is readable by group or others (mode {stat.S_IMODE(mode):04o}); chmod 600 it"
        return None
    if readers:
        return (f"is readable by group or others through its ACL ({', '.join(readers)}); "
                f"setfacl -b it and chmod 600 it")
    return None


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def resolve_broker_password(url: str, configured: Path | None
                             ) -> tuple[SecretStr | None, str | None]:
    """The password and, for `broker_connection_url` to raise, a problem found when reading.

    broker_password_file, else the systemd credential when the service has one. Problems
    anyone can see (the file is missing, open to group or others, empty; the URL has no
    user) raise ConfigError now.
    """
    key = "config key broker_password_file"
    # Every node names the same user (nodes.node_problems): the first one speaks for all.
    _, userinfo, _ = _split_userinfo((split_nodes(url) or [url])[0])
    user = unquote((userinfo or "").partition(":")[0])
    path = configured
    if path is None and os.environ.get("CREDENTIALS_DIRECTORY"):
        credential = Path(os.environ["CREDENTIALS_DIRECTORY"]) / BROKER_PASSWORD_CREDENTIAL
        path = credential if credential.exists() else None
    if path is None:
        if user and ":" not in (userinfo or ""):
            return None, (f"config key broker_url: names the user {user!r} but no password; "
                          f"set broker_password_file, or give the service the credential "
                          f"{BROKER_PASSWORD_CREDENTIAL} (LoadCredential=)")
        return None, None
    if not user:
        raise ConfigError(f"config key broker_url: has no user for the password in {path}; "
                          f"write it as amqps://USER@HOST/VHOST")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{key}: {path} not found; write the broker password there, "
                          f"mode 0600") from None
    except OSError as exc:
        raise ConfigError(f"{key}: {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{key}: {path} is not a file")
    exposed = readable_by_others(path, st.st_mode)
    if exposed:
        raise ConfigError(f"{key}: {path} {exposed}")
    try:
        raw = path.read_bytes()
    except PermissionError:
        return None, (f"{key}: {path} cannot be read by user {_user_name()} (permission "
                      f"denied); only the service's user needs to read it")
    except OSError as exc:
        raise ConfigError(f"{key}: {path}: {exc.strerror}") from None
    try:
        password = raw.decode().partition("\n")[0].removesuffix("\r")
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not UTF-8 text") from None
    if not password:
        raise ConfigError(f"{key}: {path} is empty; write the broker password on its first line")
    return SecretStr(password), None


def exposed_password_warning(settings: Settings, config_file: Path | str | None) -> str | None:
    """A warning when the effective broker_url carries a password and came from a config
    file group or others can read (the operators' group reads the station's config)."""
    if config_file is None:
        return None
    path = Path(config_file)
    try:
        mode = path.stat().st_mode
        from_file = tomllib.loads(path.read_text()).get("broker_url")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    has_password = False
    for node in split_nodes(settings.broker_url):
        _, userinfo, _ = _split_userinfo(node)
        has_password = has_password or bool(userinfo and userinfo.partition(":")[2])
    exposed = readable_by_others(path, mode)
    if not isinstance(from_file, str) or join_nodes(split_nodes(from_file)) != \
            settings.broker_url or not has_password or exposed is None:
        return None
    how = exposed.partition(";")[0].removeprefix("is ")
    return (f"broker_url in {path} carries the broker password, and the file is {how}: keep "
            f"only the user in broker_url and put the password in broker_password_file "
            f"(mode 0600)")
