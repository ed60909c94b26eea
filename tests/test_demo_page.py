"""The static demo page: built for the session's smoke corpus (tiny untrained models and a small
fake scores table, so nothing here needs a finished run), checked on disk, then served from a
local http.server and opened in headless Chromium: no console errors, every <audio> loads with
the clip's duration, every figure loads; a screenshot goes to build/demo_screenshot.png.

The browser test is skipped only when chromium / chromedriver are not installed
(``scripts/setup.sh`` installs them: Debian ``chromium chromium-driver``).
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import headless_chromium
import soundfile as sf

from listening_fakes import MODELS, fake_scores, tiny_models
from guitarsep.app.demo_page import FIGURE_NAMES, page_size, select_demo_clips, write_demo_page

ROOT = Path(__file__).resolve().parents[1]


def _fake_figures(folder: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    for name in FIGURE_NAMES:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.set_title(name)
        ax.plot([0, 1], [0, 1])
        fig.savefig(folder / f"{name}.png", dpi=60)
        plt.close(fig)
    return folder


@pytest.fixture(scope="module")
def page(smoke_profile, smoke_corpus, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    from guitarsep.corpus.out_of_family import build_out_of_family

    scores = fake_scores(smoke_corpus)
    oof = build_out_of_family(smoke_profile, progress=False)
    general = fake_scores(oof, seed=1)
    index = write_demo_page(smoke_profile, smoke_corpus, scores, tmp / "demo", tiny_models(),
                            figures_dir=_fake_figures(tmp / "figures"),
                            out_of_family=(oof, general))
    return index, pd.concat([scores, general], ignore_index=True)


def _audio_srcs(text: str) -> list[str]:
    return re.findall(r'<audio src="([^"]+)"', text)


def test_select_demo_clips_best_median_worst(smoke_corpus):
    scores = fake_scores(smoke_corpus)
    chosen = select_demo_clips(scores)
    ref = scores[scores.model == "si_umx_soft"]
    assert list(dict.fromkeys(chosen.scenario)) == [s for s in ("seen", "a", "b", "c", "d")
                                                   if s in set(ref.scenario)]
    for scenario, group in chosen.groupby("scenario"):
        vals = ref[ref.scenario == scenario].si_sdr.sort_values(ascending=False).to_numpy()
        assert list(group["rank"]) == ["best", "median", "worst"][:len(group)]
        assert group.si_sdr.iloc[0] == vals[0] and group.si_sdr.iloc[-1] == vals[-1]
        assert group.si_sdr.iloc[1] == vals[len(vals) // 2]
        assert group.clip_id.is_unique


def test_page_files(page, smoke_corpus):
    index, scores = page
    out = index.parent
    text = index.read_text()
    info = json.loads((out / "demo.json").read_text())
    assert text.startswith("<!DOCTYPE html>")
    # offline: no external resource of any kind, and no script
    for ref in re.findall(r'(?:src|href)="([^"]*)"', text):
        assert not re.match(r"^(https?:)?//", ref), ref
    assert "<script" not in text.lower() and "@import" not in text
    # every clip: mixture, target and one estimate per model, as decodable Ogg Vorbis; the
    # corpus's clips first, then the out-of-family ones (best / median / worst per family)
    chosen = select_demo_clips(scores)
    assert [c["clip_id"] for c in info["clips"]] == list(chosen.clip_id)
    assert {c["scenario"] for c in info["clips"]} >= {"seen", "oof_sample", "oof_fm",
                                                      "oof_karplus"}
    # one picture per clip (mixture, estimate, target with the notes), in the page
    for rec in info["clips"]:
        pic = rec["picture"]
        assert (out / pic["file"]).stat().st_size > 5_000 and f'src="{pic["file"]}"' in text
        assert pic["size"][0] == 640 and pic["model"] == "soft"
    srcs = _audio_srcs(text)
    assert len(srcs) == len(chosen) * (2 + len(MODELS))
    durations = {c["clip_id"]: c["duration_s"] for c in info["clips"]}
    for rec in info["clips"]:
        assert [f["signal"] for f in rec["files"]] == ["mixture", "target", *MODELS]
        for f in rec["files"]:
            assert f["file"] in srcs
            meta = sf.info(out / f["file"])
            assert (meta.format, meta.subtype, meta.channels) == ("OGG", "VORBIS", 1)
            assert meta.samplerate == 22050
            assert abs(meta.duration - durations[rec["clip_id"]]) < 0.01
        want = scores[(scores.clip_id == rec["clip_id"]) & (scores.model == "si_umx_binary")]
        got = next(f["si_sdr"] for f in rec["files"] if f["signal"] == "binary")
        assert got == pytest.approx(want.si_sdr.iloc[0])
        assert f"SI-SDR {got:+.1f} dB" in text
    for name in FIGURE_NAMES:
        assert (out / "figures" / f"{name}.png").is_file() and f"figures/{name}.png" in text
    # the smoke page is small (~3 MB); the default one is budgeted at 25 MB
    assert page_size(out) < 8e6


def test_rebuild_replaces_only_a_demo_page(page, smoke_profile, smoke_corpus, tmp_path):
    index, scores = page
    foreign = tmp_path / "not_a_demo"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_demo_page(smoke_profile, smoke_corpus, scores, foreign, tiny_models())
    assert (foreign / "keep.txt").read_text() == "mine"
    # a previous page is replaced whole (one scenario only: quick)
    copy = tmp_path / "demo"
    shutil.copytree(index.parent, copy)
    (copy / "stale.txt").write_text("old")
    one = scores[scores.scenario == "d"]
    new = write_demo_page(smoke_profile, smoke_corpus, one, copy, tiny_models(),
                          figures_dir=tmp_path / "no_figures")
    info = json.loads((copy / "demo.json").read_text())
    assert {c["scenario"] for c in info["clips"]} == {"d"}
    assert not (copy / "stale.txt").exists() and not (copy / "figures").exists()
    assert len(_audio_srcs(new.read_text())) == len(info["clips"]) * 5
    assert not list(tmp_path.glob(".demo.*"))                        # no temporary left


# --------------------------------------------------------------------------------------------
# headless browser
# --------------------------------------------------------------------------------------------
class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """http.server with single byte ranges, as any real web server has: without them a browser
    cannot read the last Ogg page and only estimates an Ogg file's duration from its bitrate."""

    def log_message(self, *args):
        pass

    def send_head(self):
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        path = self.translate_path(self.path)
        if not m or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        a, b = m.groups()
        if a == "":
            start, end = max(0, size - int(b or 0)), size - 1
        else:
            start, end = int(a), min(int(b) if b else size - 1, size - 1)
        if start >= size or start > end:
            self.send_error(416, "Requested Range Not Satisfiable")
            return None
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self._remaining = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        n, self._remaining = getattr(self, "_remaining", None), None
        if n is None:
            return super().copyfile(source, outputfile)
        while n > 0:
            buf = source.read(min(1 << 16, n))
            if not buf:
                break
            outputfile.write(buf)
            n -= len(buf)


_AUDIO_STATE = """return Array.from(document.querySelectorAll('audio')).map(a => ({
    src: a.getAttribute('src'), ready: a.readyState, duration: a.duration,
    expected: parseFloat(a.dataset.duration), error: a.error ? a.error.code : null}));"""


def test_page_in_headless_chromium(page, tmp_path):
    index, _ = page
    handler = functools.partial(_RangeHandler, directory=str(index.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    drv = headless_chromium(tmp_path / "chromium-profile", "1280,1000")
    try:
        t0 = time.perf_counter()
        drv.get(f"http://127.0.0.1:{server.server_port}/index.html")
        drv.execute_script("document.querySelectorAll('audio').forEach(a => "
                           "{ if (a.readyState < 1) a.load(); });")
        deadline = time.monotonic() + 60
        while True:
            audio = drv.execute_script(_AUDIO_STATE)
            if all(a["ready"] >= 1 or a["error"] for a in audio) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        t_audio = time.perf_counter() - t0
        images = drv.execute_script("return Array.from(document.images).map("
                                    "i => [i.getAttribute('src'), i.complete, i.naturalWidth]);")
        nav = drv.execute_script("const n = performance.getEntriesByType('navigation')[0];"
                                 "return {dom: n.domContentLoadedEventEnd, load: n.loadEventEnd};")
        logs = drv.get_log("browser")
        # full-page screenshot for a person to look at
        shot = ROOT / "build" / "demo_screenshot.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        try:
            import base64
            w, h = drv.execute_script("return [document.documentElement.scrollWidth,"
                                      "document.documentElement.scrollHeight];")
            png = drv.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}})["data"]
            shot.write_bytes(base64.b64decode(png))
        except Exception:                                   # noqa: BLE001 - viewport is enough
            drv.save_screenshot(str(shot))
    finally:
        drv.quit()
        server.shutdown()
        server.server_close()
        thread.join(5)

    (ROOT / "build" / "demo_browser.json").write_text(json.dumps({
        "audio_elements": len(audio), "all_audio_metadata_s": round(t_audio, 3),
        "dom_content_loaded_ms": nav["dom"], "load_event_ms": nav["load"],
        "page_bytes": page_size(index.parent)}, indent=2))
    errors = [e for e in logs if e.get("level") == "SEVERE"]
    assert not errors, errors
    assert len(audio) == len(_audio_srcs(index.read_text())) > 0
    bad = [a for a in audio if a["error"] or a["ready"] < 1
           or not abs(a["duration"] - a["expected"]) <= 0.1]
    assert not bad, bad
    # every image loads: the figures and one picture per clip
    assert len(images) == len(FIGURE_NAMES) + len(json.loads(
        (index.parent / "demo.json").read_text())["clips"])
    assert all(done and width > 0 for _, done, width in images), images
    assert shot.stat().st_size > 10_000
