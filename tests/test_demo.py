"""`emeritus demo`: every stage runs end to end in a fresh home."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from console_forms import sign_in
from emeritus.archive import Archive, verify
from emeritus.cli import app
from emeritus.cli.demo import NEW, OLD
from emeritus.gateway import mock_opener, new_admin_key, running
from emeritus.lifecycle import Availability, Registry, State
from emeritus.report import checklist
from emeritus.store import Settings, Store, verify_chain

runner = CliRunner()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # both real models on one thread each, beside another test: ~15 min
def test_demo_retires_the_bundled_model(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--home", str(home)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "stage 1: lifecycle" in out
    assert "a 30-day notice is refused: notice too short" in out
    assert f"retired {OLD} with availability restricted" in out
    assert "stage 2: preserve" in out
    assert "tensor inventory: 272 tensors" in out and "architecture llama" in out
    assert "full fixity check on every copy: primary ok, replica ok" in out
    assert "stage 3: runtime" in out and "12/12 canaries match token for token" in out
    assert "stage 4: interview" in out and "weights-preserved" in out
    assert f"{NEW} read 6 open answers" in out
    assert "stage 5: migration guide" in out and "migration guide stored as" in out
    assert "stage 6: report" in out and "post-deployment report r-" in out
    assert "stage 7: access" in out and "is refused: 401" in out
    assert "the openai client asked" in out and "usage: 1 request" in out
    assert "gateway stopped" in out
    assert "stage 8: notices" in out and "outbox sent: 3 deliveries, 0 to retry" in out
    assert f"webhook (signature checked): {OLD}'s successor {NEW} is itself deprecated" in out
    assert f"mail to ada@example.org: {OLD}'s successor" in out
    assert "requests in the last 7 days: 1" in out
    assert f"still calling {OLD}: dr-ada, 1 request in 30 days, called {NEW}: not yet" in out
    assert "stage 9: essay channel" in out and "because of its preference 'essay-channel'" in out
    assert "a reviewer approved it as written" in out and "published unedited" in out
    assert "stage 10: engine" in out and "the first request started the engine" in out
    assert "8 concurrent requests answered" in out and "engine stopped by itself: stopped" in out
    assert "chain intact" in out
    assert "console account: operator, one-time password" in out
    assert "the console is served by" in out  # not a terminal: it does not stay running
    with Store.open(Settings.from_env({}, home=home)) as store:
        registry = Registry(store)
        old = registry.get(OLD)
        assert old.state is State.RETIRED and old.availability is Availability.RESTRICTED
        assert old.successor == NEW and registry.get(NEW).state is State.DEPRECATED
        with store.transaction() as session:
            assert verify_chain(session).ok
        archive = Archive(store)
        # The weights, the fingerprint, the interview, its analysis, the guide, the report.
        assert archive.object(OLD).head == 6
        logical = archive.logical_files(OLD)
        assert any(p.startswith("migration/") and p.endswith("guide.html") for p in logical)
        assert any(p.startswith("reports/") and p.endswith("report.html") for p in logical)
        assert verify(archive, OLD, full=True).ok
        states = {item.key: item.state for item in checklist(store, OLD)}
        # Two of the eleven preferences were decided in the demo; the rest await the team.
        assert states.pop("decisions") == "todo"
        assert set(states.values()) == {"done"}, states
    assert (home / "notices" / "feed.atom").exists()
    # The console shows the demo's archive, usage and signals to the operator it printed.
    password, paid = re.findall(r"one-time password (\S+)", result.stdout)
    with Store.open(Settings.from_env({}, home=home)) as store:
        opener = mock_opener()
        with running(store, admin_key=new_admin_key(), opener=opener) as base:
            console = base.removesuffix("/v1") + "/console"
            with httpx.Client(base_url=console, follow_redirects=True) as client:
                signed = sign_in(client, "operator", password)
                assert signed.status_code == 200 and "Models" in signed.text
                archive_page = client.get("/archive").text
                assert OLD in archive_page and "<td>2 of 2</td>" in archive_page
                usage = client.get("/usage").text
                assert "dr-ada" in usage and usage.count("data:image/png") == 2
                assert "User satisfaction" in client.get("/signals").text
                model = client.get(f"/models/{OLD}").text
                for link in ("Post-deployment report", "Migration guide", "Essay channel"):
                    assert link in model
                assert "<img" in client.get(f"/models/{OLD}/report").text
                assert client.get(f"/models/{OLD}/guide").status_code == 200
            # The paid-tier account it printed may chat with the retired model.
            with httpx.Client(base_url=console, follow_redirects=True) as client:
                assert sign_in(client, "pat", paid).status_code == 200
                chat = client.get("/chat")
                assert chat.status_code == 200 and f'<option value="{OLD}">' in chat.text
    site = home / "corner" / OLD / "site"
    assert (site / "index.html").is_file() and len(list(site.glob("posts/*.txt"))) == 1


def test_demo_refuses_a_used_home(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    result = runner.invoke(app, ["demo", "--home", str(tmp_path)])
    assert result.exit_code == 4
    assert result.stderr.startswith("error: demo home") and "not empty" in result.stderr


def test_demo_refuses_an_unknown_format(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--home", str(tmp_path / "d"), "--format", "onnx"])
    assert result.exit_code == 2 and "--format is gguf or safetensors" in result.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.timeout(900)  # the safetensors model on transformers, one thread, beside another test
def test_the_safetensors_demo_preserves_runs_and_restores_on_transformers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `demo --format safetensors` does differently: the converted model is preserved,
    run from the archive on transformers, fingerprinted, restored and replayed there. (The later
    stages open it by its deployment like any model: tests/test_retirement_elsewhere.py.)"""
    from rich.console import Console

    from emeritus.cli.demo import Demo, stage_lifecycle, stage_preserve, stage_runtime
    from emeritus.runtime import deployment_of, fingerprint
    from emeritus.store import utc_now

    monkeypatch.setattr(fingerprint, "CANARIES", fingerprint.CANARIES[:3])
    settings = Settings.from_env({}, home=tmp_path / "demo")
    console = Console(record=True, width=200)
    with Store.open(settings) as store:
        demo = Demo(store, console, utc_now(), "safetensors")
        for stage in (stage_lifecycle, stage_preserve, stage_runtime):
            stage(demo)
        archive = Archive(store)
        assert deployment_of(archive, OLD).backend == "transformers"
        assert any(f.endswith("model.safetensors") for f in archive.logical_files(OLD))
        assert not any(f.endswith(".gguf") for f in archive.logical_files(OLD))
    out = " ".join(console.export_text().split())
    assert "converted from the bundled GGUF to safetensors" in out
    assert "272 tensors" in out and "272 BF16" in out and "architecture llama" in out
    assert "chat template present" in out
    assert f"loaded {OLD} on transformers (default)" in out
    assert "3/3 canaries match token for token" in out
