"""Subject mappings of the configuration (`mappings` at the top level for `$G`, and in each account), parsed with
nats-server's errors (opts.go parseAccountMappings) and installed on the accounts, where a client's publish is
mapped before its permissions are checked and it is routed (client.py `_publish`)."""
from __future__ import annotations

from typing import Any

from embedded_server.config import ConfigError, ConfList, ConfMap, Pos
from embedded_server.transform import AccountMappings, Mapping, TransformError


def parse_mappings(value: Any, pos: Pos | None, errors: list[ConfigError]) -> list[Mapping]:
    """`{src: dest}`, `{src: {destination, weight, cluster}}` or `{src: [{...}, ...]}` → Mappings."""
    from embedded_server.subjects import is_valid_subject
    out: list[Mapping] = []
    if not isinstance(value, ConfMap):
        errors.append(ConfigError(f"Expected mappings to be a map, got {type(value).__name__}", pos))
        return out
    for src, v in value.items():
        vpos = value.pos(src) or pos
        if not is_valid_subject(src):
            errors.append(ConfigError(f'Subject "{src}" is not a valid subject', vpos))
            continue
        if isinstance(v, str):
            try:
                out.append(Mapping(src, [(v, 100, "")]))
            except TransformError as e:
                errors.append(ConfigError(f'Error adding mapping for "{src}" to "{v}" : {e}', vpos))
            continue
        items = v if isinstance(v, ConfList) else [v] if isinstance(v, ConfMap) else None
        if items is None:
            errors.append(ConfigError(f"Unknown type {_go_type(v)} for mapping destination", vpos))
            continue
        dests = []
        bad = False
        for i, item in enumerate(items):
            ipos = items.positions[i] if isinstance(items, ConfList) and i < len(items.positions) else vpos
            dest = _map_dest(item, ipos, errors)
            if dest is None:
                bad = True
                continue
            dests.append(dest)
        if bad and not dests:
            continue
        try:
            out.append(Mapping(src, dests))
        except TransformError as e:
            errors.append(ConfigError(f'Error adding mapping for "{src}" : {e}', vpos))
    return out


def _map_dest(item: Any, pos: Pos | None, errors: list[ConfigError]) -> tuple[str, int, str] | None:
    if not isinstance(item, ConfMap):
        errors.append(ConfigError("Expected an entry for the mapping destination", pos))
        return None
    subject, weight, cluster, have_weight = "", 0, "", False
    for key, v in item.items():
        kpos = item.pos(key) or pos
        lk = key.lower()
        if lk in ("dest", "destination"):
            if not isinstance(v, str):
                errors.append(ConfigError(f"interface conversion: interface {{}} is {_go_type(v)}, not string",
                                          kpos))
                return None
            subject = v
        elif lk == "weight":
            if isinstance(v, str):
                text = v[:-1] if v.endswith("%") else v
                try:
                    weight = int(text)
                except ValueError:
                    errors.append(ConfigError(f'Invalid weight "{text}" for mapping destination', kpos))
                    return None
            elif isinstance(v, int) and not isinstance(v, bool):
                weight = v
            else:
                errors.append(ConfigError(f"Unknown entry type for weight of {v}\n", kpos))
                return None
            if weight > 100 or weight < 0:
                errors.append(ConfigError(f"Invalid weight {weight} for mapping destination", kpos))
                return None
            have_weight = True
        elif lk == "cluster":
            if not isinstance(v, str):
                errors.append(ConfigError(f"interface conversion: interface {{}} is {_go_type(v)}, not string",
                                          kpos))
                return None
            cluster = v
        else:
            errors.append(ConfigError(f'Unknown field "{key}" for mapping destination', kpos))
            return None
    if not have_weight:
        errors.append(ConfigError(f'Missing weight for mapping destination "{subject}"', pos))
        return None
    return subject, weight, cluster


def _go_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, (list, ConfList)):
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    return "string"


def install(server) -> None:
    """(Re)set every account's mappings from the options: the top level's on `$G`, each account's own."""
    opts = server.options
    for acc in server.accounts.values():
        acc.mappings = None
        acc.trace_dest = None
    top = opts.mappings
    if top:
        server.global_account.mappings = AccountMappings(top)
    operator = server.operator
    configs = [] if operator is not None else list(opts.accounts or [])
    for cfg in configs:
        if cfg.trace_dest:
            server.register_account(cfg.name).trace_dest = cfg.trace_dest
        maps = cfg.mappings
        if maps:
            server.register_account(cfg.name).mappings = AccountMappings(maps)
