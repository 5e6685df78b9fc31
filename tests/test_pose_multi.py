"""Several people through the pose path: extraction with tracking (crossings, swapped estimator
order, dropouts, people arriving mid-clip), per-person bone factors and clip boxes, rendering more
people than any palette, and the POSE_KEYPOINT round trip of person ids. A scripted estimator plays
DWPose/OpenPose (their weights cannot be downloaded here, so no real multi-person frames are run)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pose_samples import standing_person

from dreamactor_core.errors import DreamActorError
from dreamactor_core.pose import augment, extract, render
from dreamactor_core.pose import skeleton as sk
from dreamactor_core.pose.types import PoseSequence, empty_people, from_pose_keypoint, has_person_ids, to_pose_keypoint

WIDTH, HEIGHT, FRAMES = 640, 360, 24
ELBOW, WRIST, HIP, KNEE = (sk.JOINT[n] for n in ("right_elbow", "right_wrist", "right_hip", "right_knee"))


class ScriptedEstimator:
    """Returns each frame's people in a shuffled order, as a multi-person detector may."""

    description = "scripted"

    def __init__(self, frames: list[np.ndarray], seed: int = 0) -> None:
        self.frames, self.rng, self.calls = frames, np.random.default_rng(seed), 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        people = self.frames[self.calls]
        self.calls += 1
        return people[self.rng.permutation(len(people))] if len(people) else people

    def close(self) -> None:
        pass


def _scene() -> tuple[list[np.ndarray], dict[str, list[np.ndarray | None]]]:
    """Three people: A walks left to right and B right to left (they cross mid-clip; B is shorter),
    B drops out for 3 frames, C arrives at frame 10 on the far right."""
    people: dict[str, list[np.ndarray | None]] = {
        "A": [standing_person(60 + 18 * t, 60, 200) for t in range(FRAMES)],
        "B": [None if 14 <= t < 17 else standing_person(520 - 18 * t, 120, 140) for t in range(FRAMES)],
        "C": [None] * 10 + [standing_person(440, 90, 150) for _ in range(FRAMES - 10)],
    }
    frames = [np.stack([p[t] for p in people.values() if p[t] is not None]) for t in range(FRAMES)]
    return frames, people


def _extract(frames: list[np.ndarray], track: bool = True, seed: int = 0) -> PoseSequence:
    images = torch.zeros(len(frames), HEIGHT, WIDTH, 3)
    return extract.extract_poses(images, ScriptedEstimator(frames, seed), min_confidence=0.0, track=track)


def _row_of(tracked: PoseSequence, t: int, person: np.ndarray) -> int:
    rows = [i for i, row in enumerate(tracked.frames[t]) if np.allclose(row, person)]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("seed", range(4))
def test_extraction_tracks_ids_through_crossing_dropout_and_arrival_in_a_documented_order(seed):
    frames, people = _scene()
    tracked = _extract(frames, seed=seed)  # whatever order the estimator lists people in
    assert all(len(frame) == 3 for frame in tracked.frames)
    # ids by first appearance, left to right among those seen together: A (left) 0, B 1, C (arrives) 2
    for t in range(FRAMES):
        for name, expected in (("A", 0), ("B", 1), ("C", 2)):
            if people[name][t] is not None:
                assert _row_of(tracked, t, people[name][t]) == expected, (name, t)
    assert not tracked.frames[15][1, :, 2].any() and not tracked.frames[3][2, :, 2].any()  # absent: empty rows
    untracked = _extract(frames, track=False)
    assert [len(f) for f in untracked.frames] == [len(f) for f in frames]


def _bone(frame: np.ndarray, row: int, a: int, b: int) -> float:
    return float(np.linalg.norm(frame[row, a, :2] - frame[row, b, :2]))


def test_each_person_keeps_its_own_bone_factors_for_the_whole_clip():
    frames, _ = _scene()
    tracked = _extract(frames)
    factors = augment.person_bone_factors(7, tracked, 0.8, 1.2)
    assert len(factors) == 3 and factors[0] == augment.draw_bone_factors(7, 0.8, 1.2)  # person 0: the paper's draw
    assert factors[1] != factors[0] and factors[2] != factors[1]
    scaled = augment.scale_bones(tracked, factors)
    for row in range(3):
        ratios = {round(_bone(s, row, ELBOW, WRIST) / _bone(o, row, ELBOW, WRIST), 9)
                  for s, o in zip(scaled.frames, tracked.frames) if o[row, ELBOW, 2] > 0}
        assert ratios == {round(factors[row]["right_forearm"], 9)}, (row, ratios)
    # One person: one set for the clip, as before (the paper's rule).
    alone = PoseSequence(tuple(f[:1] for f in tracked.frames), WIDTH, HEIGHT)
    assert augment.person_bone_factors(7, alone, 0.8, 1.2) == augment.draw_bone_factors(7, 0.8, 1.2)
    with pytest.raises(DreamActorError, match="one set per person"):
        augment.scale_bones(tracked, factors[:2])


def test_group_box_keeps_the_layout_and_person_boxes_give_each_id_its_column():
    frames, _ = _scene()
    tracked = _extract(frames)
    group = augment.augment_clip(tracked, panel=(512, 256))
    box = augment.clip_box(group)
    assert box[0] >= 0 and box[2] <= 512 and box[1] >= 0 and box[3] <= 256
    # relative sizes survive one box: B stays shorter than A
    heights = [np.ptp(group.frames[0][row][group.frames[0][row, :, 2] > 0, 1]) for row in (0, 1)]
    assert heights[1] < 0.8 * heights[0]
    each = augment.augment_clip(tracked, panel=(600, 300), box="person", margin=0.0)
    for row in range(3):
        points = np.concatenate([f[row][f[row, :, 2] > 0, :2] for f in each.frames])
        assert 200 * row - 1e-6 <= points[:, 0].min() and points[:, 0].max() <= 200 * (row + 1) + 1e-6
        assert max(np.ptp(points[:, 0]) / 200, np.ptp(points[:, 1]) / 300) == pytest.approx(1.0)  # fills its column
    with pytest.raises(DreamActorError, match="box"):
        augment.augment_clip(tracked, panel=(600, 300), box="each")


def test_person_boxes_follow_the_reference_characters_left_to_right():
    frames, _ = _scene()
    tracked = _extract(frames)
    characters = [standing_person(300, 20, 100), standing_person(20, 40, 80), standing_person(160, 10, 120)]
    reference = PoseSequence((np.stack(characters),), 400, 200)
    fitted = augment.augment_clip(tracked, panel=(400, 200), box="person", reference=reference, margin=0.0)
    ranked = sorted(characters, key=lambda c: c[c[:, 2] > 0, 0].mean())
    for row, character in enumerate(ranked):
        target = augment.clip_box(PoseSequence((character[None],), 400, 200))
        mine = augment.clip_box(PoseSequence(tuple(f[row:row + 1] for f in fitted.frames), 400, 200))
        assert mine[0] >= target[0] - 1e-6 and mine[2] <= target[2] + 1e-6
        assert mine[1] >= target[1] - 1e-6 and mine[3] <= target[3] + 1e-6
    two = PoseSequence((np.stack(characters[:2]),), 400, 200)
    with pytest.raises(DreamActorError, match="2 people, but the driving clip has 3"):
        augment.augment_clip(tracked, panel=(400, 200), box="person", reference=two)


def test_pose_keypoint_carries_person_ids_and_restores_rows():
    frames, _ = _scene()
    tracked = _extract(frames)
    written = to_pose_keypoint(tracked, person_ids=True)
    assert [len(f["people"]) for f in written][:10] == [2] * 10 and len(written[15]["people"]) == 2
    assert [p["person_id"] for p in written[12]["people"]] == [0, 1, 2]
    assert has_person_ids(written) and not has_person_ids(to_pose_keypoint(tracked))
    back = from_pose_keypoint(written)
    assert all(len(f) == 3 for f in back.frames)
    for a, b in zip(back.frames, tracked.frames):
        np.testing.assert_allclose(a, b, atol=1e-9)  # normalized and back: float64 rounding only
    # Readers that only know the OpenPose keys read every person present.
    assert len(written[12]["people"][2]["pose_keypoints_2d"]) == 18 * 3
    bad = [{**written[0], "people": [{**written[0]["people"][0], "person_id": -1}]}]
    with pytest.raises(DreamActorError, match="person_id"):
        from_pose_keypoint(bad)


def test_more_people_than_any_palette_and_people_arriving_mid_clip_render():
    crowd = np.stack([standing_person(10 + 15 * i, 20 + (i % 3) * 40, 60) for i in range(40)])
    clip = PoseSequence((empty_people(0), crowd, np.concatenate([empty_people(1), crowd[:1]])), 640, 200)
    images = render.draw_poses(clip)
    assert images.shape == (3, 200, 640, 3) and not images[0].any()
    for i in (0, 17, 39):  # every person drawn: pixels around each one's neck
        x, y = crowd[i, sk.JOINT["neck"], :2].astype(int)
        assert images[1, y - 2:y + 3, x - 2:x + 3].any()
    np.testing.assert_array_equal(images[2], render.draw_poses(PoseSequence((crowd[:1],), 640, 200))[0])


REF_W, REF_H, PANEL = 512, 256, 256  # a 2:1 reference picture, a square panel


def _shown_box(panel: torch.Tensor, channel: int) -> tuple[float, float, float, float]:
    """The pixel box (x0, y0, x1, y1, edges) where ``channel`` is over half lit in a [H, W, 3] panel."""
    ys, xs = np.nonzero(panel[..., channel].numpy() > 0.5)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


@pytest.mark.parametrize("fit", ["pad", "crop"])
def test_person_boxes_land_where_the_canvas_shows_each_reference_character(fit):
    """The truth is the canvas itself: each reference character is painted in its own colour over its
    pose box, the picture goes through build_canvas, and each driving person's fitted box must sit on
    its colour in the reference panel (centred, filling it on the fitting side, within 1.5 px: the
    antialiased edge of a halved picture). Stretching x and y apart puts them 50 px off under pad."""
    from dreamactor_core.canvas.composite import build_canvas

    characters = [standing_person(80, 30, 190), standing_person(255, 60, 150)]  # in the middle half: crop keeps them
    picture = torch.zeros(1, REF_H, REF_W, 3)
    for channel, character in enumerate(characters):
        x0, y0, x1, y1 = augment.clip_box(PoseSequence((character[None],), REF_W, REF_H))
        picture[0, round(y0):round(y1), round(x0):round(x1), channel] = 1.0
    reference = PoseSequence((np.stack(characters[::-1]),), REF_W, REF_H)  # listed right to left: ranked anyway
    canvas, _ = build_canvas(picture, torch.zeros(1, PANEL, PANEL, 3), width=PANEL, height=PANEL, fit=fit)
    driving = PoseSequence(tuple(np.stack([standing_person(40 + t, 50, 250), standing_person(400 - t, 90, 120)])
                                 for t in range(0, 40, 8)), WIDTH, HEIGHT)
    fitted = augment.augment_clip(driving, panel=(PANEL, PANEL), box="person", reference=reference, margin=0.0,
                                  fit=fit)
    for row in range(2):
        shown = _shown_box(canvas[0, :, :PANEL], row)
        mine = augment.clip_box(PoseSequence(tuple(f[row:row + 1] for f in fitted.frames), PANEL, PANEL))
        assert (mine[0] + mine[2]) / 2 == pytest.approx((shown[0] + shown[2]) / 2, abs=1.5), (row, mine, shown)
        assert (mine[1] + mine[3]) / 2 == pytest.approx((shown[1] + shown[3]) / 2, abs=1.5), (row, mine, shown)
        assert mine[0] >= shown[0] - 1.5 and mine[2] <= shown[2] + 1.5 and mine[1] >= shown[1] - 1.5
        assert mine[3] <= shown[3] + 1.5
        assert max(mine[2] - mine[0] - (shown[2] - shown[0]), mine[3] - mine[1] - (shown[3] - shown[1])) > -3
    one = PoseSequence((characters[0][None],), REF_W, REF_H)  # box "group": the clip onto one character
    grouped = augment.clip_box(augment.augment_clip(driving, panel=(PANEL, PANEL), reference=one, fit=fit))
    shown = _shown_box(canvas[0, :, :PANEL], 0)
    assert (grouped[0] + grouped[2]) / 2 == pytest.approx((shown[0] + shown[2]) / 2, abs=1.5)
    assert (grouped[1] + grouped[3]) / 2 == pytest.approx((shown[1] + shown[3]) / 2, abs=1.5)
    assert grouped[1] >= shown[1] - 1.5 and grouped[3] <= shown[3] + 1.5


def test_evaluation_scores_tracked_people_person_by_person_whatever_the_detector_order():
    """The evaluate command's pose agreement with a multi-person backend: the result shows the same
    three people as the driving clip but its extraction lists them in another order; tracked and
    paired by id it agrees fully, while the untracked scorer (one main body per frame, first among
    equals) compares different people. A person the result lacks scores the minimum for them."""
    from dreamactor_core.app.evaluation import Evaluators, measure_frames

    frames, people = _scene()
    without_c = [np.stack([p[t] for name, p in people.items() if name != "C" and p[t] is not None])
                 for t in range(FRAMES)]
    seeds = iter(range(100))

    def extractor(track: bool, result_frames: list[np.ndarray]):
        clips = iter([frames, result_frames])  # evaluation extracts the driving clip, then the result

        def extract_poses(images: torch.Tensor) -> PoseSequence:
            estimator = ScriptedEstimator(next(clips), seed=next(seeds))  # every extraction lists them anew
            return extract.extract_poses(images, estimator, min_confidence=0.0, track=track)
        return extract_poses

    clip, reference = torch.zeros(FRAMES, HEIGHT, WIDTH, 3), torch.zeros(HEIGHT, WIDTH, 3)

    def agreement(track: bool, result_frames: list[np.ndarray] = frames) -> float:
        evaluators = Evaluators(extract_poses=extractor(track, result_frames), people_tracked=track)
        return measure_frames(reference, clip, clip, 24.0, evaluators)["measures"]["pose_agreement"]

    assert agreement(True) == pytest.approx(5.0)
    assert agreement(False) < 4.0  # detector order: main bodies of different people
    assert agreement(True, without_c) == pytest.approx((5.0 + 5.0 + 1.0) / 3)  # C missing: A, B 5 and C 1
