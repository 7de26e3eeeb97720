"""`reverie report` and the study page: rendered from store rows written here (no night is run),
and opened in headless Chromium with the network blocked.

    python -m pytest -q tests/test_report.py
    python -m tests.test_report /tmp/report.png   # a screenshot of the test home of six nights

The browser test needs Debian's `chromium` (`make browser` installs it); without it, it skips.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from reverie.meter.embed import TfidfEmbedder
from reverie.report import night_page, study_page, write_page
from reverie.store import Store
from reverie.store.documents import ChunkSpan
from reverie.store.dreams import DreamRecord

CHART = re.compile(r'<svg class="chart" id="([^"]+)"')
BASE = {"accuracy": 0.10, "perplexity": 16.2, "vendi": 6.2}

PASSAGES = {
    "Vell Harbour": ["The lantern festival of Vell Harbour is held on the first new moon of autumn.",
                     "Fishermen of Vell Harbour paint their boats blue to honour the founder Ama Rell."],
    "Glaciers": ["The Aletsch glacier is the largest glacier in the Alps, about 23 kilometres long.",
                 "Glaciers retreat when summer melting exceeds the snow that falls in winter."],
    "Printing": ["Johannes Gutenberg introduced movable type printing in Mainz around 1450.",
                 "The Gutenberg Bible was among the first books printed with movable metal type."],
    "Volcanoes": ["Mount Etna on Sicily is one of the most active volcanoes in the world.",
                  "Basaltic lava from Etna flows far because it is hot and runny."],
}
GENERATORS = ("cloze", "qa", "restate", "facts", "bookclub")


def _chunks(store) -> list:
    for i, (title, sentences) in enumerate(PASSAGES.items()):
        text = " ".join(sentences)
        cut = len(sentences[0])
        spans = [ChunkSpan(0, cut, 20), ChunkSpan(cut + 1, len(text), 20)]
        store.put_document(source=f"/docs/{i}.txt", title=title, kind="txt",
                           sha256=hashlib.sha256(text.encode()).hexdigest(), text=text, spans=spans)
    return store.chunks()


def _dream_text(generator: str, chunk_text: str, k: int) -> str:
    fact = chunk_text.rstrip(".")
    return {
        "cloze": f"Question: Fill the gap: {fact.replace(' the ', ' ___ ', 1)}?\nAnswer: the",
        "qa": f"Question: What does the passage say (variant {k})?\nAnswer: {fact}.",
        "restate": f"In other words, {fact[0].lower()}{fact[1:]}, as the passage puts it ({k}).",
        "facts": f"- {fact}.\n- This is fact number {k} from the passage.",
        "bookclub": f"Reader {k}: I liked the part where it says that {fact[0].lower()}{fact[1:]}. Why?",
    }[generator]


def _dream_run(store, night_seed: int, chunks, per_chunk: int = 2) -> tuple[int, dict[str, list[int]]]:
    """A finished dream run over `chunks` with some dreams dropped; the night's roles of the rest."""
    run_id = store.start_dream_run(night_seed, {"budget": 1000})
    records = [DreamRecord(g, _dream_text(g, c["text"], k), "tiny", night_seed * 100 + k, [c["id"]])
               for c in chunks for g in GENERATORS for k in range(per_chunk)]
    ids = store.add_dreams(records)
    with store.transaction():
        store.conn.executemany("UPDATE dreams SET run_id = ? WHERE id = ?", [(run_id, i) for i in ids])
    reasons = ["near-duplicate of dream {}", "too short: 3 words (< 8)", "perplexity 412 > 300",
               "ungrounded: 40% of content words in the passage (< 60%)"]
    drops = {i: reasons[j % len(reasons)].format(ids[0]) for j, i in enumerate(ids[::4])}
    store.finish_dream_run(run_id, drops, {})
    kept = [i for i in ids if i not in drops]
    return run_id, {"quiz": kept[::6], "train": [i for i in kept if i not in kept[::6]]}


def _figures(label: str, accuracy, perplexity, vendi, retained=None) -> dict:
    out = {"label": label, "n_questions": 20, "accuracy": accuracy, "f1": None if accuracy is None else accuracy * 0.9,
           "perplexity": perplexity, "vendi": vendi, "n_distinct": None if vendi is None else vendi * 0.8,
           "answer_tokens": 41.0, "probe_kl": 0.04, "seconds": {"quiz": 3.1, "perplexity": 2.0, "probe": 9.5}}
    if accuracy is not None:  # what the gate tests: per question, the gold answer's log-prob a token
        out["answer_logp"] = [4 * accuracy - 6 + 0.1 * i for i in range(5)]
    if retained is not None:
        out |= {"retained": retained, "n_retained": 12, "retained_logp": [4 * retained - 6, 4 * retained - 5]}
    return out


def _checks(reference: dict, candidate: dict, base: dict) -> list[dict]:
    ceiling, floor = base["perplexity"] * 1.05, base["vendi"] * 0.9
    return [
        {"name": "learned", "passed": candidate["accuracy"] > reference["accuracy"],
         "detail": f"quiz accuracy {reference['accuracy']:.1%} ({reference['label']}) -> {candidate['accuracy']:.1%}"},
        {"name": "forgetting", "passed": candidate["perplexity"] <= ceiling,
         "detail": f"perplexity {base['perplexity']:.2f} (base) -> {candidate['perplexity']:.2f}, limit {ceiling:.2f}"},
        {"name": "diversity", "passed": candidate["vendi"] >= floor,
         "detail": f"probe Vendi {base['vendi']:.2f} (base) -> {candidate['vendi']:.2f}, floor {floor:.2f}"},
    ]


def add_night(store, accuracy: float, perplexity: float, vendi: float, retained=None, dreams=None,
              reference: dict | None = None, strength: float = 1.0) -> tuple[int, dict]:
    """A finished night as `run_night` records it, kept when every check passes."""
    night_id = store.nights()[-1]["id"] + 1 if store.nights() else 1
    base = _figures("base", BASE["accuracy"], BASE["perplexity"], BASE["vendi"])
    candidate = _figures(f"night-{night_id}", accuracy, perplexity, vendi, retained)
    figures = {"base": base, "candidate": candidate,
               "strength": {"chosen": strength, "tried": [{"strength": strength, "passed": True}]},
               "forgetting_text": "/data/wikitext2_valid.txt"}
    if reference is not None:
        figures["reference"] = reference
    checks = _checks(reference or base, candidate, base)
    run_id, roles = dreams if dreams else (None, {})
    config = {"seed": 7, "settings": {"sleep": {"max_perplexity_rise": 0.05, "max_vendi_drop": 0.1}, "quiz": {}},
              "dream": {"run_id": run_id, "kept_tokens": 900, "generated_tokens": 1400, "seconds": 40.0}}
    nid = store.start_night(7, config)
    with store.transaction():
        store.conn.executemany("INSERT INTO night_dreams(night_id, dream_id, role) VALUES (?, ?, ?)",
                               [(nid, i, role) for role, ids in roles.items() for i in ids])
    status = "kept" if all(c["passed"] for c in checks) else "rejected"
    store.finish_night(nid, status, {"dream": 40.0, "train": 300.0, "quiz": 60.0, "total": 400.0},
                       {"figures": figures, "checks": checks, "tokens": {"trained": 5000}, "queries": {}})
    return nid, candidate


def many_nights(store, with_dreams: bool = True) -> list[int]:
    """Six nights: accuracy rising, retention held, one rejected for forgetting (night 4)."""
    chunks = _chunks(store) if with_dreams else []
    plan = [(0.25, 16.4, 6.1, None), (0.35, 16.6, 6.0, 0.24), (0.45, 16.8, 5.9, 0.32),
            (0.50, 17.9, 5.3, 0.30), (0.48, 16.7, 6.0, 0.34), (0.55, 16.9, 5.8, 0.40)]
    reference, ids, learned = None, [], []
    for k, (acc, ppl, vendi, retained) in enumerate(plan):
        dreams = _dream_run(store, k + 1, chunks[2 * (k % 4): 2 * (k % 4) + 2]) if with_dreams else None
        if dreams:
            dreams[1]["replay"] = learned[::3]  # earlier nights' learned dreams, replayed
        nid, cand = add_night(store, acc, ppl, vendi, retained, dreams, reference, strength=1.0 if k != 2 else 0.65)
        if store.night(nid)["status"] == "kept":
            reference = cand
            learned += dreams[1]["train"] if dreams else []
        ids.append(nid)
    return ids


def probe_run(store, label: str, answers: list[str], night_id=None) -> None:
    prompts = [{"prompt": p, "n_distinct": len(answers), "examples": answers}
               for p in ("Tell me a joke.", "Write a haiku about the sea.")]
    store.add_meter_run("probe", label, {"mean": {}, "prompts": prompts}, {"n": 10}, night_id)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "reverie.db")
    yield s
    s.close()


def charts(page: str) -> list[str]:
    return CHART.findall(page)


def svg(page: str, chart_id: str) -> str:
    start = page.index(f'id="{chart_id}"')
    return page[start: page.index("</svg>", start)]


def test_zero_nights_says_how_to_run_one(store):
    page = night_page(store)
    assert "no nights yet" in page.lower()
    assert "reverie sleep" in page
    assert charts(page) == []


def test_one_kept_night(store):
    add_night(store, 0.3, 16.5, 6.0)
    page = night_page(store)
    assert charts(page) == ["chart-accuracy", "chart-perplexity", "chart-vendi", "chart-likelihood"]
    assert 'class="kept"' in page and "rejected" not in svg(page, "chart-accuracy")
    ceiling = svg(page, "chart-perplexity")
    assert "ceiling" in ceiling and 'stroke-dasharray="6 4"' in ceiling  # the bound, dashed
    assert "earlier nights" not in page  # no retained figure stored: no such line
    assert "measured perplexity on wikitext2_valid.txt" in page
    assert "No night kept its probe answers" in page  # says what it cannot show rather than inventing it


def test_many_nights_with_a_rejected_one(store):
    ids = many_nights(store)
    statuses = [store.night(i)["status"] for i in ids]
    assert statuses.count("rejected") == 1
    page = night_page(store, TfidfEmbedder())
    found = charts(page)
    assert found[:4] == ["chart-accuracy", "chart-perplexity", "chart-vendi", "chart-likelihood"]
    assert {f"chart-dreams-{i}" for i in ids} <= set(found) and "chart-map" in found
    # The rejected night: hollow on accuracy, retained, perplexity, Vendi and both likelihoods; its reasons in the row.
    assert page.count('<circle class="hollow" cx=') == 6
    likelihood = svg(page, "chart-likelihood")
    assert "data-label=\"in use before, earlier nights&#x27; questions\"" in likelihood
    dots = re.findall(r"<title>candidate, new questions, night (\d+): (-?[\d.]+)</title>", likelihood)
    assert [int(n) for n, _ in dots] == ids and float(dots[0][1]) == pytest.approx(4 * 0.25 - 6 + 0.2, abs=0.01)
    assert "perplexity 16.20 (base) -&gt; 17.90, limit 17.01" in page
    assert "earlier nights" in svg(page, "chart-accuracy")
    dots = re.findall(r"<title>candidate, new questions, night (\d+): ([\d.]+%)</title>", svg(page, "chart-accuracy"))
    assert [int(n) for n, _ in dots] == ids and dots[0][1] == "25%"
    # The dream sets: counts by generator and the drop reasons by kind.
    assert "near-duplicate of dream" in page and "too short" in page
    bars = svg(page, f"chart-dreams-{ids[-1]}")
    assert all(g in bars for g in GENERATORS)


def test_map_caps_its_points_and_can_be_skipped(store):
    many_nights(store)
    from reverie.report.dream_map import dream_map

    map_svg, note = dream_map(store, TfidfEmbedder(), cap=30, chunk_cap=5)
    assert map_svg.count('<circle class="point"') == 30
    assert 1 <= map_svg.count('<rect class="chunk"') <= 5
    assert "30 of" in note
    assert dream_map(store, TfidfEmbedder(), cap=30, chunk_cap=5)[0] == map_svg  # a seeded sample: the same map
    page = night_page(store, embedder=None)
    assert "chart-map" not in charts(page) and "map was skipped" in page


def test_old_running_and_diverged_nights_render(store):
    add_night(store, 0.3, 16.5, 6.0)
    # Diverged: the candidate has only its label, and the one check says why.
    nid = store.start_night(1, {})
    store.finish_night(nid, "rejected", {"total": 12.0}, {
        "figures": {"base": _figures("base", 0.1, 16.2, 6.2), "candidate": {"label": f"night-{nid}", "n_questions": 20},
                    "strength": {"chosen": 1.0, "tried": []}},
        "checks": [{"name": "finite", "passed": False, "detail": "training diverged: the adapter's weights are not finite"}]})
    old = store.start_night(2, {})  # an early version's night: no figures at all, timings missing
    store.finish_night(old, "failed", {}, {})
    store.start_night(3, {"settings": {}})  # running
    page = night_page(store)
    assert "training diverged" in page
    assert 'class="running"' in page and "still running" in page and 'class="failed"' in page
    assert charts(page)[:3] == ["chart-accuracy", "chart-perplexity", "chart-vendi"]


def test_a_diverged_perplexity_is_drawn_at_the_edge(store):
    add_night(store, 0.3, 16.5, 6.0)
    add_night(store, 0.1, 5.6e61, 1.9)
    chart = svg(night_page(store), "chart-perplexity")
    assert chart.count('class="off"') == 1 and "5.60e+61" in chart
    assert "e+61" not in chart.split("<g ", 1)[0]  # the axis stays on the nights that made sense


def test_a_far_bound_does_not_flatten_the_chart(store):
    nid, _ = add_night(store, 0.3, 16.5, 6.0)
    night = store.night(nid)
    config = json.loads(night["config"])
    config["settings"]["sleep"]["max_perplexity_rise"] = 1e30  # a test home's "never reject"
    store.set_night_config(nid, config)
    chart = svg(night_page(store), "chart-perplexity")
    assert "ceiling (above the chart: 1.62e+31)" in chart
    assert max(float(t) for t in re.findall(r'class="tick"[^>]*>([\d.]+)</text>', chart)) < 20


def test_probe_answers_first_beside_last(store):
    add_night(store, 0.3, 16.5, 6.0)
    probe_run(store, "before", ["Why did the chicken cross the road?", "Knock knock."])
    probe_run(store, "after", ["A pun about fish."], night_id=1)
    page = night_page(store)
    assert "Why did the chicken" in page and "A pun about fish" in page and "after (" in page


def test_probe_answers_of_the_base_model_the_kept_night_and_a_rejected_one(store):
    def said(night_id: int, base: list[str], candidate: list[str]) -> None:
        row = store.night(night_id)
        metrics = json.loads(row["metrics"])
        metrics["figures"]["base"]["probe_examples"] = {"Tell me a joke.": base}
        metrics["figures"]["candidate"]["probe_examples"] = {"Tell me a joke.": candidate}
        with store.transaction():
            store.conn.execute("UPDATE nights SET metrics = ? WHERE id = ?", (json.dumps(metrics), night_id))

    first, _ = add_night(store, 0.3, 16.5, 6.0)
    said(first, ["Why did the chicken cross the road?"], ["A pun about lanterns."])
    second, _ = add_night(store, 0.4, 30.0, 6.0)  # forgot: rejected
    said(second, ["Why did the chicken cross the road?"], ["Super Bowl"])
    page = night_page(store)
    assert "No night kept its probe answers" not in page
    for text in ("base model (", "night-1, kept", "night-2, rejected", "Why did the chicken", "A pun about lanterns",
                 "Super Bowl"):
        assert text in page, text


def test_the_page_fetches_nothing(store):
    many_nights(store)
    page = night_page(store, TfidfEmbedder())
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)|url\(|@import""", page, re.I)


def test_report_command_writes_and_registers_the_page(home, cli, monkeypatch):
    monkeypatch.setenv("REVERIE_METER__EMBEDDER", "tfidf")
    with Store.open(home / "reverie.db") as s:
        many_nights(s)
    res = cli("report")
    assert res.code == 0, res.err
    path = Path(res.out.split("wrote ", 1)[1].strip())
    assert path.parent == home / "reports" and path.name.startswith("report-") and path.suffix == ".html"
    assert "chart-map" in charts(path.read_text(encoding="utf-8"))
    with Store.open(home / "reverie.db") as s:
        [row] = s.conn.execute("SELECT * FROM artifacts WHERE kind = 'report'").fetchall()
    assert row["path"] == str(path.resolve()) and json.loads(row["meta"]) == {"nights": 6, "map": True}


def test_report_command_on_an_empty_home_and_a_bad_out(home, cli, tmp_path):
    res = cli("report", "--out", tmp_path / "r.html", "--no-map")
    assert res.code == 0, res.err
    assert "no nights yet" in (tmp_path / "r.html").read_text(encoding="utf-8").lower()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = cli("report", "--out", blocker / "r.html")
    assert res.code != 0
    assert res.err.strip().startswith("error:") and "cannot write the report" in res.err
    assert len(res.err.strip().splitlines()) == 1


def study(missing: bool = False) -> dict:
    def row(night: int, drift: float, kept=None) -> dict:
        r = {"night": night, "accuracy_all": 0.2 + 0.02 * night, "accuracy_first": 0.3 - drift * night,
             "logp_first": -3.0 - drift * night,
             "perplexity": 16.2 * (1 + drift * night), "vendi": 6.2 * (1 - drift * night), "distinct_2": 0.6 - drift,
             "compression_ratio": 3.0 + drift * night, "n_distinct": 8 - drift * night, "kept": kept,
             "train_meter": {"vendi": 40 - night, "distinct_2": 0.5}}
        if missing and night == 2:
            r["perplexity"] = None
            del r["vendi"]
        return r

    return {
        "title": "Ten nights of SQuAD", "settings": {"nights": 4, "passages per night": 5, "seed": 0},
        "base": {"accuracy_all": 0.1, "perplexity": 16.2, "vendi": 6.2, "distinct_2": 0.6, "compression_ratio": 3.0,
                 "n_distinct": 8.0},
        "bounds": {"max_perplexity_rise": 0.05, "max_vendi_drop": 0.1},
        "arms": {"naive": [row(n, 0.04) for n in range(1, 5)],
                 "accumulate": [row(n, 0.02) for n in range(1, 5)],
                 "reverie": [row(n, 0.005, kept=n != 3) for n in range(1, 5)]},
    }


def test_study_page_has_a_chart_per_metric_and_a_line_per_arm():
    page = study_page(study())
    found = charts(page)
    assert found[:8] == ["chart-accuracy_all", "chart-accuracy_first", "chart-logp_first", "chart-perplexity",
                         "chart-vendi", "chart-distinct_2", "chart-compression_ratio", "chart-n_distinct"]
    assert "chart-train-vendi" in found
    vendi = svg(page, "chart-vendi")
    assert all(f'data-label="{arm}"' in vendi for arm in ("naive", "accumulate", "reverie"))
    assert 'data-label="base model"' in vendi and "floor" in vendi and "ceiling" in svg(page, "chart-perplexity")
    assert "ceiling" not in svg(page, "chart-distinct_2")
    assert vendi.count('<circle class="hollow" cx=') == 1  # reverie's rejected night 3


def test_study_page_tolerates_missing_values():
    page = study_page(study(missing=True))
    assert "chart-vendi" in charts(page)
    assert study_page({"arms": {}}).count('<svg class="chart"') == 8  # every chart, each saying so
    assert "not measured" in study_page({"arms": {}})


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def open_in_chromium(page: Path, out: Path, size: str = "1280,3000") -> tuple[str, str]:
    """(the rendered DOM, Chromium's log) for `page`, with every network request refused, and a
    screenshot at `out`. Two runs: --dump-dom and --screenshot do not combine."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
             "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"]
    try:
        dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
        shot = subprocess.run([*flags, f"--screenshot={out}", f"--window-size={size}", "--force-device-scale-factor=1",
                               page.as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert dom.returncode == 0 and shot.returncode == 0, dom.stderr[-2000:] + shot.stderr[-2000:]
    return dom.stdout, dom.stderr + shot.stderr


@pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed (`make browser` installs it)")
def test_report_renders_in_chromium_offline(store, tmp_path):
    many_nights(store)
    probe_run(store, "before", ["Why did the chicken cross the road?"])
    probe_run(store, "after", ["A pun about fish."], night_id=6)
    source = night_page(store, TfidfEmbedder(), home=tmp_path)
    page = write_page(source, tmp_path / "report.html")
    dom, log = open_in_chromium(page, tmp_path / "report.png")
    assert charts(source) and charts(dom) == charts(source)  # every chart drawn, in order
    assert dom.count("<circle") == source.count("<circle")
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert not console, console  # the page has no script: any console line is an error
    png = (tmp_path / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


if __name__ == "__main__":  # python -m tests.test_report docs/report.png
    with tempfile.TemporaryDirectory() as tmp:
        with Store.open(Path(tmp) / "reverie.db") as s:
            many_nights(s)
            probe_run(s, "before", ["Why did the chicken cross the road? To get to the other side.",
                                    "What do you call a fish with no eyes? A fsh."])
            probe_run(s, "after", ["Why did the lantern go to Vell Harbour? For the festival.",
                                   "What do you call a fish with no eyes? A fsh."], night_id=6)
            html_path = write_page(night_page(s, TfidfEmbedder(), home="~/.local/share/reverie"),
                                   Path(tmp) / "report.html")
        open_in_chromium(html_path, Path(sys.argv[1]).resolve(), size=sys.argv[2] if len(sys.argv) > 2 else "1280,2200")
