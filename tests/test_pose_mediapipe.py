"""MediaPipe Holistic on real photos and clips that nobody here made: people are found where they
are, a cat is not a person, and a clip keeps its frame count."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from real_data import CARTOON_CLIP, opencv_sample, skimage_photo, template_clip

from dreamactor_core.pose import skeleton as sk
from dreamactor_core.pose.extract import extract_poses, make_estimator
from dreamactor_core.video_io import read_clip, read_image

pytestmark = pytest.mark.slow


def extract(frames: np.ndarray, video: bool = False):
    return extract_poses(frames, make_estimator("mediapipe", video=video))


def body_points(person: np.ndarray) -> np.ndarray:
    body = person[sk.BODY]
    return body[body[:, 2] > 0][:, :2]


def inside(points: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    x0, y0, x1, y1 = box
    return bool(((points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)).all())


def test_astronaut_is_found_with_joints_on_her():
    poses = extract(skimage_photo("astronaut")[None])
    assert [len(frame) for frame in poses.frames] == [1]
    person = poses.frames[0][0]
    assert inside(person[[sk.JOINT["nose"]], :2], (160, 70, 290, 200))  # her face
    assert inside(body_points(person), (0, 60, 370, 512))  # not on the shuttle at the right
    shoulders = person[[sk.JOINT["left_shoulder"], sk.JOINT["right_shoulder"]]]
    assert (shoulders[:, 2] > 0).all() and (shoulders[:, 1] > 200).all() and (shoulders[:, 1] < 300).all()
    assert shoulders[0, 0] > shoulders[1, 0]  # facing us: her left shoulder is on the image's right
    face = person[sk.FACE]
    assert (face[:, 2] > 0).all() and inside(face[:, :2], (150, 60, 310, 210))


def test_a_cat_is_not_a_person_and_its_frame_is_kept_empty():
    poses = extract(skimage_photo("chelsea")[None])
    assert len(poses) == 1 and len(poses.frames[0]) == 0


def test_messi_full_body_from_head_to_feet():
    image = read_image(opencv_sample("messi5.jpg"))
    poses = extract(image[None])
    person = poses.frames[0][0]
    assert (person[sk.BODY, 2] > 0).all()  # all 18 body joints
    assert inside(body_points(person), (60, 60, 480, image.shape[0]))
    assert person[sk.JOINT["nose"], 1] < 150 < person[sk.JOINT["left_hip"], 1] < person[sk.JOINT["left_ankle"], 1]
    assert person[sk.JOINT["left_ankle"], 1] > 220 and person[sk.JOINT["right_ankle"], 1] > 220
    for side, hand in (("left", sk.LEFT_HAND), ("right", sk.RIGHT_HAND)):  # both hands, each on its own arm
        assert (person[hand, 2] > 0).all()
        assert np.linalg.norm(person[hand.start, :2] - person[sk.JOINT[f"{side}_wrist"], :2]) < 15
    for pupil, eye in ((sk.RIGHT_PUPIL, "right_eye"), (sk.LEFT_PUPIL, "left_eye")):
        assert np.linalg.norm(person[pupil, :2] - person[sk.JOINT[eye], :2]) < 6


def test_small_walker_in_a_crop_of_vtest():
    clip = read_clip(opencv_sample("vtest.avi"), max_frames=3, stride=2)  # frames 0, 2, 4 at 10 fps
    crops = np.stack([cv2.resize(frame[190:340, 190:340], (300, 300), interpolation=cv2.INTER_CUBIC)
                      for frame in clip.frames])
    poses = extract(crops, video=True)
    assert [len(frame) for frame in poses.frames] == [1, 1, 1]
    for frame in poses.frames:
        points = body_points(frame[0])
        assert inside(points, (100, 20, 270, 260))  # the man walking on the path, not the cones or grass
        assert np.ptp(points[:, 1]) > 100  # head to feet, standing


def test_dancer_clip_keeps_its_frame_count_and_finds_her_in_most_frames():
    clip = read_clip(template_clip(), stride=5)  # 9 of the 45 frames
    poses = extract(clip.frames, video=True)
    assert len(poses) == len(clip.frames) == 9
    found = [frame for frame in poses.frames if len(frame)]
    assert len(found) >= 7
    for frame in found:
        assert inside(body_points(frame[0]), (40, 50, 310, 350))
    assert (poses.width, poses.height) == (350, 350)


def test_cartoon_girl_is_found_in_every_frame_and_not_on_the_tower():
    clip = read_clip(template_clip(CARTOON_CLIP), stride=10)  # 9 of the 81 frames
    poses = extract(clip.frames, video=True)
    assert [len(frame) for frame in poses.frames] == [1] * 9
    for frame in poses.frames:
        points = body_points(frame[0])
        assert len(points) >= 14 and inside(points, (20, 20, 232, 350))  # the tower starts at x ~ 235
