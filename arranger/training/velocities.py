"""The per-class velocity table a trained drum model carries in its card.

Measured at training time over the training songs that come from Groove MIDI files (those whose
``info.csv`` row :func:`arranger.corpus.groove.info_for` finds), so user-trained weights play
their own corpus's dynamics; with no such song there is no table and the step levels' default
velocities are used, as before tables existed.
"""

from __future__ import annotations

from collections.abc import Sequence

from arranger.corpus import groove
from arranger.training.layer_data import is_validation


def table_card(songs: Sequence, val_fraction: float) -> dict:
    """``VelocityTable.to_card()`` over the drum songs of the training side, or ``{}``.

    Validation songs are left out: the table is part of the model, learnt from what it trains on.
    """
    infos, seen = [], set()
    for song in songs:
        if "drums" not in song.layers or is_validation(song.source, val_fraction):
            continue
        info = groove.info_for(song.source) if song.source else None
        if info is not None and info.path not in seen:  # one file can give several songs
            seen.add(info.path)
            infos.append(info)
    try:
        return groove.velocity_table([groove.read_performance(i) for i in infos]).to_card()
    except ValueError:  # no performance whose hits could be measured
        return {}
