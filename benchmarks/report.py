"""Writes the suite's results: `suite.json`, `suite.md` and the PNG plots (see `suite.py`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

README_START = "<!-- suite results: start -->"
README_END = "<!-- suite results: end -->"
QUICK_NOTE = " (quick mode: tiny sizes, the figures mean nothing)"
DASH = "\u2013"
COLORS = ["#d9480f", "#1c7ed6", "#868e96", "#2b8a3e", "#ae3ec9", "#f08c00"]


def write(document: dict[str, Any], out: Path, readme: Path | None = None) -> None:
    """suite.json, suite.md and the plots into `out`; the Markdown also into `readme`'s
    results section when given."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "suite.json").write_text(json.dumps(document, indent=1) + "\n")
    images = plot(document, out)
    markdown = render(document, images)
    (out / "suite.md").write_text(markdown)
    if readme is not None and readme.exists():
        embed(readme, markdown.replace("](", "](results/"))


def embed(readme: Path, markdown: str) -> None:
    """Replaces the results section of the README (between the markers) by `markdown`."""
    text = readme.read_text()
    body = markdown.split("\n", 1)[1].lstrip()  # without the page title; one level down
    body = re.sub(r"^## ", "### ", body, flags=re.M)
    section = f"{README_START}\n{body.rstrip()}\n{README_END}"
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip() + "\n\n## Latest results\n\n" + section + "\n"
    readme.write_text(text)


# ----- Markdown ----------------------------------------------------------------------------------


def fmt(value: float | None, pattern: str = "{:,.0f}") -> str:
    return "-" if value is None else pattern.format(value)


def fmt_spread(entry: dict[str, float] | None, pattern: str = "{:,.0f}") -> str:
    """ "median (min-max)" of a summary entry."""
    if entry is None:
        return "-"
    if entry["min"] == entry["max"]:
        return pattern.format(entry["median"])
    low, high = pattern.format(entry["min"]), pattern.format(entry["max"])
    return f"{pattern.format(entry['median'])} ({low}{DASH}{high})"


def render(document: dict[str, Any], images: dict[str, str]) -> str:
    env = document["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    lines = [
        "# Benchmark results",
        "",
        f"Taken {env['date']} on {env['cpu'] or 'an unknown CPU'} ({env['cpu_count']} CPUs), "
        f"{env['platform']}, Python {env['python']}; server pinned to CPU 0 and load client to "
        f"CPU 1: {'yes' if env['pinned'] else 'no'}. The whole suite took "
        f"{document['seconds']:.0f} s{QUICK_NOTE if document['quick'] else ''}.",
        "",
        f"Versions: {versions}.",
        "",
        f"Figures are medians over the runs, with the spread (min{DASH}max) in brackets. "
        "messages/s: messages delivered to all subscriptions divided by the time from the "
        "trigger to the last message. Server CPU: user + system time of the server process "
        "(from /proc) over the same span, divided by the messages delivered; when the load "
        "client saturates its core, messages/s measures the client and CPU per message is the "
        "fairer comparison. Latency: from the publish in the server (`time.time()`, sent in "
        "the event as `ts`) to the receipt by the client.",
        "",
    ]
    if document.get("targets"):
        lines += render_targets(document["targets"])
    for name, entry in document["scenarios"].items():
        lines += render_scenario(name, entry)
        if name in images:
            lines += [f"![{name}]({images[name]})", ""]
    for extra in ("memory", "connections", "rss"):
        if extra in images:
            lines += [f"![{extra}]({images[extra]})", ""]
    if document.get("micro"):
        lines += render_micro(document["micro"])
    return "\n".join(lines)


def render_targets(found: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["## Targets", "", "| target | measured | limit | met |", "|---|---:|---:|---|"]
    for target in found:
        unit = target["unit"]
        measured, limit = target["measured"], target["limit"]
        if unit == "%":
            shown, bound = fmt(measured and measured * 100, "{:.1f}%"), f"{limit * 100:.0f}%"
        elif unit == "x":
            shown, bound = fmt(measured, "{:.2f}x"), f"{limit:g}x"
        elif unit == "B":
            shown, bound = fmt(measured, "{:,.0f} B"), f"{limit:,.0f} B"
        elif unit:
            shown, bound = fmt(measured, "{:.3g} " + unit), f"{limit:g} {unit}"
        else:
            shown, bound = ("yes" if measured else "no"), "yes"
        comparison = "≥" if target["higher_is_better"] else "≤"
        met = {True: "yes", False: "**no**", None: "-"}[target["met"]]
        lines.append(f"| {target['name']} | {shown} | {comparison} {bound} | {met} |")
    return [*lines, ""]


def render_scenario(name: str, entry: dict[str, Any]) -> list[str]:
    scenario = entry["scenario"]
    lines = [f"## {scenario['title']}", ""]
    lines.append(
        f"`{name}`: {scenario['connections']:,} connection(s) x {scenario['subscriptions']:,} "
        f"subscription(s), {scenario['events']:,} event(s)"
        + (f" at {scenario['rate']:g}/s" if scenario["rate"] else "")
        + f", {scenario['runs']} run(s) per server, {entry['seconds']:.0f} s in all.",
    )
    lines.append("")
    kind = scenario["kind"]
    servers = entry["servers"]
    if kind in COLUMNS:
        columns = COLUMNS[kind]
        checked = (
            "all subscribed" if kind in ("memory", "connections") else "all delivered, in order"
        )
        lines += [
            "| server | " + " | ".join(title for title, _, _ in columns) + f" | {checked} |",
            "|---|" + "---:|" * len(columns) + "---|",
        ]
        for label, server in servers.items():
            s = server["summary"]
            cells = [fmt_spread(s[metric], pattern) for _, metric, pattern in columns]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {ok(s)} |")
    elif kind == "flat":
        lines += [
            "| server | RSS at the start | RSS at the end | growth | messages/s "
            "| all delivered, in order |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for label, server in servers.items():
            s = server["summary"]
            run = server["runs"][0] if server["runs"] else {}
            samples = run.get("rss_samples") or []
            first = samples[0][2] / 2**20 if samples else None
            last = samples[-1][2] / 2**20 if samples else None
            growth = s["rss_growth"]
            lines.append(
                f"| {label} | {fmt(first, '{:.1f} MiB')} | {fmt(last, '{:.1f} MiB')} "
                f"| {fmt(growth and growth['median'] * 100, '{:+.1f}%')} "
                f"| {fmt_spread(s['messages_per_second'])} | {ok(s)} |"
            )
    return [*lines, ""]


#: The columns of a scenario's table, per kind: title, summary metric, number format.
_TIMING = [
    ("messages/s", "messages_per_second", "{:,.0f}"),
    ("server CPU µs/message", "server_cpu_us_per_message", "{:.1f}"),
    ("latency p50 ms", "latency_p50_ms", "{:,.2f}"),
    ("p99 ms", "latency_p99_ms", "{:,.2f}"),
    ("max ms", "latency_max_ms", "{:,.2f}"),
]
COLUMNS = {
    "throughput": _TIMING,
    "latency": _TIMING,
    "memory": [
        ("resident memory per idle subscription", "rss_bytes_per_subscription", "{:,.0f} B"),
        ("all live after", "subscribe_seconds", "{:.3f} s"),
        ("subscriptions/s", "subscriptions_per_second", "{:,.0f}"),
    ],
    "connections": [
        ("resident memory per idle connection", "rss_bytes_per_connection", "{:,.0f} B"),
        ("all connected after", "connect_seconds", "{:.3f} s"),
        ("all live after", "live_seconds", "{:.3f} s"),
    ],
}


def ok(summary: dict[str, Any]) -> str:
    return "yes" if summary["all_ok"] else "**NO**"


def micro_summary(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The pytest-benchmark JSON boiled down to name, median, min, max and rounds."""
    return [
        {
            "name": bench["name"],
            "median_us": bench["stats"]["median"] * 1e6,
            "min_us": bench["stats"]["min"] * 1e6,
            "max_us": bench["stats"]["max"] * 1e6,
            "rounds": bench["stats"]["rounds"],
        }
        for bench in data.get("benchmarks", [])
    ]


def render_micro(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "## Micro-benchmarks (pytest-benchmark)",
        "",
        "`pytest benchmarks/micro --benchmark-only`: the Rust core through its bindings and the "
        "resolver call, no sockets.",
        "",
        "| benchmark | median | min | max | rounds |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['name']}` | {micro_time(row['median_us'])} | {micro_time(row['min_us'])} "
            f"| {micro_time(row['max_us'])} | {row['rounds']} |"
        )
    return [*lines, ""]


def micro_time(us: float) -> str:
    if us >= 1000:
        return f"{us / 1000:,.2f} ms"
    return f"{us:,.1f} µs"


# ----- plots -------------------------------------------------------------------------------------


def plot(document: dict[str, Any], out: Path) -> dict[str, str]:
    """Writes the PNGs; returns the file name per scenario (and `memory`, `connections`,
    `rss`)."""
    images: dict[str, str] = {}
    memory: dict[str, dict[str, Any]] = {}
    connections: dict[str, dict[str, Any]] = {}
    for name, entry in document["scenarios"].items():
        kind = entry["scenario"]["kind"]
        if kind in ("throughput", "latency"):
            images[name] = plot_throughput(name, entry, out)
        elif kind == "memory":
            memory[name] = entry
        elif kind == "connections":
            connections[name] = entry
        elif kind == "flat":
            images["rss"] = plot_rss(entry, out)
    if memory:
        images["memory"] = plot_memory(memory, out)
    if connections:
        images["connections"] = plot_connections(connections, out)
    return images


def plot_throughput(name: str, entry: dict[str, Any], out: Path) -> str:
    """Bars of messages/s and of CPU per message, and the latency distribution (CDF)."""
    servers = entry["servers"]
    labels = list(servers)
    figure, (rate_axis, cpu_axis, latency_axis) = plt.subplots(1, 3, figsize=(15, 4.2))
    figure.suptitle(entry["scenario"]["title"], fontsize=11)
    for axis, metric, title in (
        (rate_axis, "messages_per_second", "messages delivered per second"),
        (cpu_axis, "server_cpu_us_per_message", "server CPU µs per message (lower is better)"),
    ):
        medians, low, high = [], [], []
        for label in labels:
            value = servers[label]["summary"][metric]
            medians.append(value["median"] if value else 0)
            low.append(value["median"] - value["min"] if value else 0)
            high.append(value["max"] - value["median"] if value else 0)
        bars = axis.bar(
            range(len(labels)), medians, yerr=[low, high], capsize=4, color=COLORS[: len(labels)]
        )
        axis.bar_label(
            bars,
            labels=[f"{m:,.0f}" if m >= 100 else f"{m:.1f}" for m in medians],
            padding=2,
            fontsize=8,
        )
        axis.set_xticks(range(len(labels)), [wrap(label) for label in labels], fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.margins(y=0.15)
    for index, label in enumerate(labels):
        cdf = median_cdf(servers[label]["runs"])
        if cdf:
            percents = [p for p, _ in cdf]
            values = [max(v, 1e-3) for _, v in cdf]
            latency_axis.plot(values, percents, label=label, color=COLORS[index % len(COLORS)])
    latency_axis.set_xscale("log")
    latency_axis.set_xlabel("latency, publish to receipt (ms, log scale)")
    latency_axis.set_ylabel("percent of messages")
    latency_axis.set_title("latency distribution (median run)", fontsize=10)
    latency_axis.grid(True, alpha=0.3)
    latency_axis.legend(fontsize=8)
    figure.tight_layout()
    file = f"{name}.png"
    figure.savefig(out / file, dpi=90)
    plt.close(figure)
    return file


def wrap(label: str) -> str:
    return label.replace(" (", "\n(")


def median_cdf(runs: Sequence[dict[str, Any]]) -> list[list[float]] | None:
    """The latency CDF of the run with the median p99."""
    with_latency = sorted(
        (r for r in runs if r.get("latency")), key=lambda r: r["latency"]["p99_ms"]
    )
    if not with_latency:
        return None
    cdf: list[list[float]] = with_latency[len(with_latency) // 2]["latency"]["cdf_ms"]
    return cdf


def server_labels(entries: Iterable[dict[str, Any]]) -> list[str]:
    """Every server of the scenarios, in the order they first appear."""
    labels: list[str] = []
    for entry in entries:
        labels += [label for label in entry["servers"] if label not in labels]
    return labels


def plot_memory(entries: dict[str, dict[str, Any]], out: Path) -> str:
    """Bytes per idle subscription and time until all are live, per size and server."""
    sizes = list(entries)
    labels = server_labels(entries.values())
    figure, (bytes_axis, time_axis) = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / max(1, len(labels))
    for index, label in enumerate(labels):
        per, live = [], []
        for size in sizes:
            summary = entries[size]["servers"].get(label, {}).get("summary", {})
            per.append((summary.get("rss_bytes_per_subscription") or {}).get("median", 0) / 1024)
            live.append((summary.get("subscribe_seconds") or {}).get("median", 0))
        positions = [i + index * width for i in range(len(sizes))]
        color = COLORS[index % len(COLORS)]
        bars = bytes_axis.bar(positions, per, width, label=label, color=color)
        bytes_axis.bar_label(
            bars, labels=[f"{v:.1f}" if v else "" for v in per], fontsize=7, padding=2
        )
        bars = time_axis.bar(positions, live, width, label=label, color=color)
        time_axis.bar_label(
            bars, labels=[f"{v:.2f}" if v else "" for v in live], fontsize=7, padding=2
        )
    names = [
        entries[size]["scenario"]["subscriptions"] * entries[size]["scenario"]["connections"]
        for size in sizes
    ]
    for axis, title in (
        (bytes_axis, "resident memory per idle subscription (KiB)"),
        (time_axis, "seconds until every subscription is live"),
    ):
        axis.set_xticks(
            [i + width * (len(labels) - 1) / 2 for i in range(len(sizes))],
            [f"{n:,} subs" for n in names],
        )
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=8)
        axis.margins(y=0.15)
    figure.tight_layout()
    figure.savefig(out / "memory.png", dpi=90)
    plt.close(figure)
    return "memory.png"


def plot_connections(entries: dict[str, dict[str, Any]], out: Path) -> str:
    """Bytes per idle connection and time until all are live, against the number of
    connections, per server."""
    ordered = sorted(entries.values(), key=lambda entry: entry["scenario"]["connections"])
    labels = server_labels(ordered)
    figure, (bytes_axis, time_axis) = plt.subplots(1, 2, figsize=(12, 4.2))
    for index, label in enumerate(labels):
        counts, per, live = [], [], []
        for entry in ordered:
            summary = entry["servers"].get(label, {}).get("summary", {})
            memory = summary.get("rss_bytes_per_connection")
            seconds = summary.get("live_seconds")
            if memory is None and seconds is None:
                continue
            counts.append(entry["scenario"]["connections"])
            per.append(memory["median"] / 1024 if memory else float("nan"))
            live.append(seconds["median"] if seconds else float("nan"))
        color = COLORS[index % len(COLORS)]
        bytes_axis.plot(counts, per, label=label, color=color, marker="o")
        time_axis.plot(counts, live, label=label, color=color, marker="o")
    for axis, title in (
        (bytes_axis, "resident memory per idle connection, 1 subscription each (KiB)"),
        (time_axis, "seconds until every connection's subscription is live"),
    ):
        counts = [entry["scenario"]["connections"] for entry in ordered]
        axis.set_xticks(counts, [f"{n:,}" for n in counts])
        axis.set_xlabel("connections")
        axis.set_ylim(bottom=0)
        axis.set_title(title, fontsize=10)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
        axis.margins(y=0.15)
    figure.tight_layout()
    figure.savefig(out / "connections.png", dpi=90)
    plt.close(figure)
    return "connections.png"


def plot_rss(entry: dict[str, Any], out: Path) -> str:
    """The server's resident memory against the messages delivered so far."""
    figure, axis = plt.subplots(figsize=(8, 4))
    highest = 0.0
    for index, (label, server) in enumerate(entry["servers"].items()):
        for run in server["runs"]:
            samples = run.get("rss_samples") or []
            if samples:
                mib = [s[2] / 2**20 for s in samples]
                highest = max(highest, *mib)
                axis.plot(
                    [s[1] for s in samples],
                    mib,
                    color=COLORS[index % len(COLORS)],
                    label=label,
                    marker=".",
                )
    axis.set_xlabel("messages delivered")
    axis.set_ylabel("server resident memory (MiB)")
    axis.set_ylim(0, max(highest, 1.0) * 1.25)
    axis.set_title(entry["scenario"]["title"], fontsize=10)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "rss_1m_messages.png", dpi=90)
    plt.close(figure)
    return "rss_1m_messages.png"
