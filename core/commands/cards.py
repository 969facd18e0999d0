"""``card`` and ``reproduce``: a run's (or a model set's) reproducibility card, and its rebuild
in a fresh lab compared figure by figure (``core.evaluation.cards``, ``core.evaluation.reproduce``)."""

from __future__ import annotations

import argparse

from core.commands.base import add_device_arg, command, emit, table
from core.commands.progress import bar
from core.common.errors import ConfigError
from core.store.db import Store


def _card_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", type=int, help="the evaluation run's id")
    p.add_argument("--set", type=int, default=None, dest="set_id",
                   help="a model set's id instead: its card")  # fmt: skip
    p.add_argument("--md", action="store_true", help="print the card as Markdown")


@command("card", "print a run's reproducibility card (JSON, or Markdown with --md)")(_card_args)
def card_cmd(args: argparse.Namespace) -> int:
    from core.evaluation.cards import card_of, dumps, markdown

    if args.md and args.json:
        raise ConfigError("choose one of --json and --md")
    if (args.run is None) == (args.set_id is None):
        raise ConfigError("name a run id (python -m core card RUN_ID) or a model set (--set ID)")
    c = card_of(Store(args.db, must_exist=True), args.run, args.set_id)
    print(markdown(c) if args.md else dumps(c))
    return 0


def _repro_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("card_file", metavar="CARD.json", help="a card written by python -m core card")
    add_device_arg(p)


@command("reproduce", "rebuild a card in a new lab (--db NEW.duckdb) and compare its figures")(
    _repro_args
)
def reproduce_cmd(args: argparse.Namespace) -> int:
    from core.evaluation.reproduce import load_card, reproduce

    if args.db is None:
        raise ConfigError("reproduce needs --db NEW.duckdb: the new lab to rebuild the card in")
    c = load_card(args.card_file)
    with bar("reproduce", quiet=args.json) as progress:
        rep = reproduce(c, args.db, args.device, progress)
    rep.pop("card")
    rows = [{**r, "split": r["split"] or ""} for r in rep["figures"] if r["split"] or not r["ok"]
            or r["figure"].startswith("cost")]  # fmt: skip
    warn = "".join(f"\nwarning: {w}" for w in rep["warnings"])
    text = (
        f"{rep['kind']} {rep['card_id']} rebuilt as {rep['reproduced_id']} in {rep['db']} "
        f"({rep['wall_time_s']:.1f} s, {rep['device']}); mode {rep['mode']}: {rep['why']}{warn}\n"
        + table(rows, ("split", "figure", "card", "reproduced", "diff", "tolerance", "ok"))
        + f"\nverdict: {rep['match']}; {'ok' if rep['ok'] else 'NOT OK'} for mode {rep['mode']} "
        "(seeds, masks and forget indices equal; rows not shown passed)"
    )
    emit(args, rep, text)
    return 0 if rep["ok"] else 3  # 3: rebuilt, but a figure is off
