"""``report.md``: the audit report as Markdown, one function per section.

The verdict and its findings come first (the headline requested-goal success is printed
as a result only when the evaluation is verified, else labelled UNVERIFIED or FAILED);
then requested-goal success per split, the hindsight figures (NOT
results) after it and labelled so; then the training log, coverage, safety,
reward recompute, failed episodes with their rules, the audit record and what
was read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from her_goals.config import to_plain
from her_recorder.audit.model import AuditReport, finite_or_null
from her_recorder.audit.rules import LABELS, RULES

SPLIT_NAMES = {
    "eval": "evaluation (held-out goals)",
    "train": "training (exploration)",
    "all": "all complete episodes",
    "all_counting_aborted_as_failures": "all, aborted counted as failures",
}


def bag_name(path: str) -> str:
    """``session/bag_0003``: bag directory names repeat across sessions."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


def fmt(value: Any, digits: int = 3) -> str:
    """A number for the report: ``n/a`` for None and non-finite floats."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def markdown(r: AuditReport) -> str:
    """The whole ``report.md``."""
    lines: list[str] = []
    for section in (
        _header,
        _verdict,
        _requested,
        _hindsight,
        _training_log,
        _coverage,
        _safety,
        _sensing,
        _recompute,
        _failures,
        _record,
    ):
        lines += section(r)
    return "\n".join(lines)


def _header(r: AuditReport) -> list[str]:
    gs = r.goal_space
    units = gs.get("units", "")
    return [
        "# HER audit",
        "",
        f"- bags: {', '.join(r.bags)}",
        f"- config hash: {', '.join(r.config_hashes) or 'none'}",
        f"- artefact hash: {r.artefact_hash}",
        f"- task: {', '.join(r.tasks) or 'unknown'}; goal space: {gs['name']} (dim {gs['dim']}, "
        f"{units} in {gs['frame']}); success tolerance {r.tolerance} {units}",
        f"- seeds: {json.dumps(r.seeds)}",
        "",
    ]


def _verdict(r: AuditReport) -> list[str]:
    ev = r.evaluation
    acc = ev.get("accounting", {})
    lines = [
        f"**verdict: {r.verdict}**",
        "",
        f"- {r.headline()}",
    ]
    if ev.get("episodes"):
        lines.append(
            f"- evaluation episodes: {ev['episodes']} in the bags, {ev.get('planned_episodes', 0)} planned; "
            + ", ".join(f"{n} {k}" for k, n in acc.items())
            + f"; {ev.get('headline_rule', '')}"
        )
        only = ev.get("complete_only")
        if only is not None and only.n:
            lines.append(f"- beside it, ended episodes only (NOT the headline): {only.text()}")
    lines.append("")
    if not r.findings:
        return [*lines, "No findings: every invariant the headline relies on holds.", ""]
    lines += ["| severity | code | what was found | what it means | fix |", "|---|---|---|---|---|"]
    for f in r.findings:
        lines.append(f"| {f.severity} | `{f.code}` | {_cell(f.message)} | {f.meaning} | {f.fix} |")
    return [*lines, ""]


def _cell(text: str, limit: int = 600) -> str:
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _requested(r: AuditReport) -> list[str]:
    verified = r.verdict == "verified"
    lines = [
        "## Requested-goal success (the result)"
        if verified
        else f"## Requested-goal success ({r.verdict.upper()}: not a result)",
        "",
        "From each episode's original desired goal (START event) and the final achieved goal, "
        "`goal_space.is_success` with the tolerance above; Wilson 95% interval. Complete "
        "episodes only, per split; the headline above counts aborted and discarded evaluation "
        "episodes as failures.",
        "",
    ]
    if not verified:
        lines += [f"The verdict is **{r.verdict}**: see the findings above before using any figure below.", ""]
    lines += [
        "| episodes | successes / n | success | 95% CI |",
        "|---|---|---|---|",
    ]
    for key, label in SPLIT_NAMES.items():
        rate = r.requested_success[key]
        lines.append(
            f"| {label} | {rate.successes} / {rate.n} | {fmt(rate.rate)} | "
            f"{fmt(rate.ci_low)}-{fmt(rate.ci_high)} |"
            if rate.n
            else f"| {label} | 0 / 0 | n/a | n/a |"
        )
    disagree = r.reward_recompute["end_success_disagreements"]
    listed = ", ".join(f"{bag_name(d['bag'])} ep {d['episode_id']}" for d in disagree[:10])
    lines += [
        "",
        f"Recorded END success disagrees with the goal space in {len(disagree)} episode(s)"
        + (": " + listed if disagree else "."),
        "",
    ]
    return lines


def _hindsight(r: AuditReport) -> list[str]:
    h = r.hindsight
    return [
        "## Hindsight figures (NOT results)",
        "",
        f"{h['what']}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| hindsight episode success (final step, goal relabelled by the training strategy) "
        f"| {fmt(h['episode_success'])} |",
        f"| positive-reward share of relabelled transitions, from the bags ({h['strategy_used']}) "
        f"| {fmt(h['positive_fraction_relabelled_bags'])} |",
        f"| positive-reward share with the requested goals, from the bags "
        f"| {fmt(h['positive_fraction_original_bags'])} |",
        f"| hindsight ratio used in training (training log) | {fmt(h['hindsight_ratio_training'])} |",
        f"| hindsight ratio configured (k/(k+1) or relabel_prob) | {fmt(h['hindsight_ratio_configured'])} |",
        f"| positive share of relabelled samples (training log) | "
        f"{fmt(h['positive_fraction_relabelled_training'])} |",
        "",
        f"Relabel strategy: {r.relabel['strategy'] or 'not recorded'} (k {fmt(r.relabel['k'])}, "
        f"probability {fmt(r.relabel['probability'])}; from {r.relabel['source']}).",
        "",
    ]


def _training_log(r: AuditReport) -> list[str]:
    log = r.training_log
    if log is None:
        return []
    return [
        "## Training log",
        "",
        f"{log.path}: {log.records} update windows; hindsight ratio mean "
        f"{fmt(log.hindsight_ratio_mean)}, last {fmt(log.hindsight_ratio_last)}; positive "
        f"share original {fmt(log.positive_fraction_original_mean)}, relabelled "
        f"{fmt(log.positive_fraction_relabelled_mean)}.",
        "",
    ]


def _coverage(r: AuditReport) -> list[str]:
    c = r.coverage
    return [
        "## Goal coverage",
        "",
        f"Cells of {c['cell_size']} {c['units']} over the goal region {c['region_low']} .. "
        f"{c['region_high']} ({c['region_source']}; grid {c['grid_shape']}).",
        "",
        f"- desired-goal cells reached by some achieved goal: {c['desired_cells_reached']} / "
        f"{c['desired_cells']} ({fmt(c['desired_cell_fraction'])})",
        f"- region cells reached by some achieved goal: {c['region_cells_reached']} / "
        f"{c['region_cells']} ({fmt(c['region_cell_fraction'])})",
        "",
    ]


def _safety(r: AuditReport) -> list[str]:
    s = r.safety
    lines = [
        "## Safety cost",
        "",
        f"Total {fmt(s['total_cost'])}; per episode mean "
        f"{fmt(s['mean_cost_per_episode'])}, max {fmt(s['max_cost_per_episode'])}; "
        f"{s['episodes_with_interventions']} episode(s) with interventions, "
        f"{s['intervention_steps']} step(s); {s['aborted']} aborted. Steps by flag: "
        f"{json.dumps(s['steps_by_flag'])}.",
        "",
        "| bag | episode | split | status | safety cost | interventions | flags |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in r.episodes:
        if a.safety_cost or a.interventions or a.status == "aborted":
            lines.append(
                f"| {bag_name(a.bag)} | {a.episode_id} | {a.split} | {a.status} "
                f"({a.end_reason}) | {fmt(a.safety_cost)} | {a.interventions} | "
                f"{json.dumps(a.flag_counts)} |"
            )
    return lines


def _sensing(r: AuditReport) -> list[str]:
    s = r.sensing
    if not s or not s.get("episodes"):
        return []
    lines = [
        "## Sensing: margins and verdicts",
        "",
        f"Success margin (tolerance minus the final distance to the requested goal, measured "
        f"state): min {fmt(s['margin_min'])}, median {fmt(s['margin_median'])}; "
        f"{s['close_calls']} of {s['episodes']} complete episode(s) within "
        f"{fmt(s['close_call_band'])} of the tolerance (close calls).",
    ]
    if s["episodes_with_true_state"]:
        lines.append(
            f"Simulation with sensing noise: the measured final state's verdict differed from the "
            f"true state's in {s['verdict_flips']} of {s['episodes_with_true_state']} episode(s) "
            f"({json.dumps(s['verdict_flips_by_split'])})."
        )
    if s["by_sim_params"]:
        lines += [
            "",
            "Success by randomised parameter (below / above its median):",
            "",
            "| parameter | median | success below | success above |",
            "|---|---|---|---|",
        ]
        for name, row in s["by_sim_params"].items():
            lines.append(
                f"| {name} | {fmt(row['median'])} | {fmt(row['success_low'])} ({row['n_low']}) | "
                f"{fmt(row['success_high'])} ({row['n_high']}) |"
            )
    return [*lines, ""]


def _recompute(r: AuditReport) -> list[str]:
    rc = r.reward_recompute
    lines = [
        "",
        "## Reward recompute",
        "",
        f"{rc['status_line']}: every recorded reward against {rc['function']}.",
        "",
    ]
    lines += [
        f"- {bag_name(e['bag'])} episode {e['episode_id']} step {e['step']}: recorded "
        f"{e['recorded']}, recomputed {e['recomputed']}"
        for e in rc["examples"]
    ]
    return lines


def _failures(r: AuditReport) -> list[str]:
    units = r.goal_space.get("units", "")
    lines = [
        "",
        "## Failed episodes",
        "",
        "Counts: " + ", ".join(f"{k}: {v}" for k, v in r.failures.items())
        + f" ({r.failures.get('unclassified', 0)} unclassified: the last resort).",
        "",
        "| bag | episode | split | label | final distance | numbers |",
        "|---|---|---|---|---|---|",
    ]
    for a in r.episodes:
        if a.failure is not None:
            numbers = json.dumps(finite_or_null(to_plain(a.failure.evidence)))
            lines.append(
                f"| {bag_name(a.bag)} | {a.episode_id} | {a.split} | {a.failure.label} | "
                f"{fmt(a.final_distance, 4)} {units} | {numbers} |"
            )
    lines += [
        "",
        "Aborted episodes count as failures and are labelled by the same rules (their abort "
        "reason is under Safety cost); discarded, incomplete and invalid evaluation episodes "
        "are not audited step by step: the findings above name them.",
        "",
        "### Rules (the first that fires is the label)",
        "",
    ]
    lines += [f"{i}. **{label}**: {RULES[label]}." for i, label in enumerate(LABELS, 1)]
    return lines


def _record(r: AuditReport) -> list[str]:
    lines = [
        "",
        "## Audit record (seeds)",
        "",
        "```json",
        json.dumps(finite_or_null(to_plain(r.audit_record)), indent=1, sort_keys=True),
        "```",
        "",
        "## What was read",
        "",
        r.read["summary"],
        "",
    ]
    if r.read["audited_from_raw_messages"]:
        lines.append(
            f"{r.read['audited_from_raw_messages']} episode(s) the reader left out for reward/"
            "success mismatches were audited from their raw messages."
        )
        lines.append("")
    if r.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in r.notes] + [""]
    if r.files:
        lines += ["## Files", ""] + [f"- {k}: {v}" for k, v in sorted(r.files.items())] + [""]
    return lines
