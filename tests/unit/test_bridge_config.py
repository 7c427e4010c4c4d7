"""The bridge's configuration file: defaults, validation messages, command-line overrides."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sipharness.bridge.config import ConfigError, load_config
from sipharness.commands import bridge as bridge_command

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "bridge.yaml"


def test_the_fixture_file_is_valid_and_documents_the_defaults() -> None:
    cfg = load_config(FIXTURE)
    assert cfg.auth_mode == 401 and cfg.algorithms == ["MD5"]
    assert [r.room_code for r in cfg.rooms if r.enabled] == ["abc-defg-hij", "xyz-uvwt-rst"]
    assert cfg.password_for("sipharness") == "sipharness-test-only"
    assert (cfg.mask_keep_last, cfg.mask_char) == (4, "X")
    assert cfg.t1 == 0.5 and cfg.t2 == 4.0


@pytest.mark.parametrize(("text", "message"), [
    ("rooms:\n  - room_code: a\n    room_id: x\n  - room_code: b\n    room_id: 7\n",
     "cfg.yaml:5: rooms[1].room_id: expected a string"),
    ("auth:\n  mode: 402\n", "cfg.yaml:2: auth.mode: expected one of 401, 407"),
    ("listen:\n  udp: 70000\n", "cfg.yaml:2: listen.udp: expected a port number"),
    ("faults: [no-such-fault]\n", "cfg.yaml:1: faults[0]: expected one of"),
    ("colour: blue\n", "cfg.yaml:1: colour: unknown field"),
    ("auth:\n  algorithms: [MD4]\n", "cfg.yaml:2: auth.algorithms[0]: expected one of"),
    ("timers: {t1: -1}\n", "cfg.yaml:1: timers.t1: expected a number"),
    ("rooms: [\n", "cfg.yaml:2: not valid YAML"),
])
def test_an_invalid_file_names_file_line_field_and_reason(tmp_path: Path, text: str,
                                                          message: str) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(str(tmp_path / message)) or message in str(err.value)


def test_overrides_are_validated_like_the_file() -> None:
    with pytest.raises(ConfigError, match=r"capacity\.max_calls"):
        load_config(FIXTURE, {"capacity": {"max_calls": 0}})


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bridge_command.add_arguments(parser)
    return parser.parse_args(argv)


def test_command_line_flags_override_the_file() -> None:
    args = parse("--port", "5070", "--transport", "udp", "--username", "trunk",
                 "--password", "s3cret", "--room-code", "new-room-123",
                 "--webhook-url", "http://127.0.0.1:9/hooks")
    base = [{"room_code": r.room_code, "room_id": r.room_id} for r in load_config(FIXTURE).rooms]
    cfg = load_config(FIXTURE, bridge_command.overrides_from_args(args, base))
    assert (cfg.udp_port, cfg.tcp_port) == (5070, None)
    assert cfg.password_for("trunk") == "s3cret" and cfg.password_for("sipharness") is None
    room = cfg.room("new-room-123")
    assert room is not None and room.enabled
    assert cfg.room("abc-defg-hij") is not None
    assert cfg.webhook_url == "http://127.0.0.1:9/hooks"


def test_check_flag_validates_and_reports_without_listening(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert bridge_command.run(parse("--config", str(FIXTURE), "--check",
                                    "--fault", "no-100-trying")) == 0
    out = capsys.readouterr().out
    assert "ok: 3 rooms" in out and "no-100-trying" in out
    assert "sipharness-test-only" not in out


def test_an_unknown_fault_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert bridge_command.run(parse("--fault", "nope")) == 2
    assert "--list-faults" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "message"), [
    ("listen: {udp: null, tcp: null}\n", "cfg.yaml:1: listen: no SIP listener"),
    ("identity:\n  trusted_sources: [10.0.0.0/8, trunk.example]\n",
     "cfg.yaml:2: identity.trusted_sources[1]: expected an IP address"),
    ("timers: {provisional_repeat: 0}\n", "timers.provisional_repeat: expected a number >= 0.1"),
    ("auth:\n  flood: {rate: 0}\n", "cfg.yaml:2: auth.flood.rate: expected a number"),
    ("auth:\n  max_nonces: 0\n", "cfg.yaml:2: auth.max_nonces: expected an integer >= 1"),
    ("timers: {min_se: 0}\n", "cfg.yaml:1: timers.min_se: expected an integer >= 1"),
])
def test_new_fields_are_validated(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)


def test_only_configured_sources_are_trusted_for_p_asserted_identity() -> None:
    cfg = load_config(FIXTURE, {"identity": {"trust_pai": True,
                                             "trusted_sources": ["10.0.0.0/8", "::1"]}})
    assert cfg.trusts_pai_from("10.1.2.3") and cfg.trusts_pai_from("::1")
    assert not cfg.trusts_pai_from("127.0.0.1") and not cfg.trusts_pai_from("not-an-ip")
    assert not load_config(FIXTURE, {"identity": {"trusted_sources": ["10.0.0.0/8"]}}
                           ).trusts_pai_from("10.1.2.3")


def test_the_defaults_limit_floods_and_repeat_the_180_each_minute() -> None:
    cfg = load_config(FIXTURE)
    assert (cfg.flood_rate, cfg.flood_burst, cfg.max_nonces) == (1000, 2000, 10000)
    assert cfg.provisional_repeat == 60 and not cfg.trust_pai


def test_without_a_config_file_or_flags_the_command_refuses_to_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert bridge_command.run(parse("--check")) == 2
    err = capsys.readouterr().err
    assert "fixtures/bridge.yaml" in err and "--config" in err
    assert bridge_command.run(parse("--check", "--room-code", "abc", "--username", "u",
                                    "--password", "p")) == 0
    assert "ok: 1 rooms, 1 credentials" in capsys.readouterr().out


def test_a_config_without_rooms_is_accepted_with_a_loud_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("rooms: []\n")
    assert bridge_command.run(parse("--config", str(path), "--check")) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "no rooms" in err and "no credentials" in err


def test_help_documents_exit_1_and_the_top_level_unknown_room_status() -> None:
    text = bridge_command.DESCRIPTION
    assert "1 when a port cannot be bound" in text
    assert "\n  unknown_room_status:" in text and "reuse_port" in text
    assert "current" in text and "directory" in text
