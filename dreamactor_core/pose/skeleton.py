"""The pack's whole-body keypoint layout, its limb tables and its kinematic tree.

One layout serves every backend and every consumer, so that augmentation and rendering are written
once: OpenPose BODY_18 (with its neck, the root the renderer and the ControlNet ecosystem expect),
the six COCO-WholeBody foot points, the OpenPose face (68 iBUG points plus two pupils) and the two
21-point hands. COCO-WholeBody 133 (DWPose) maps into it without loss except the neck, which it
lacks and which is synthesized as the shoulder midpoint.
"""

from __future__ import annotations

import numpy as np

BODY_POINTS = 18
FOOT_POINTS = 6
FACE_POINTS = 70  # 68 iBUG points + right pupil + left pupil (OpenPose face)
FACE_POINTS_WITHOUT_PUPILS = 68
HAND_POINTS = 21

BODY = slice(0, BODY_POINTS)
FEET = slice(BODY.stop, BODY.stop + FOOT_POINTS)
FACE = slice(FEET.stop, FEET.stop + FACE_POINTS)
LEFT_HAND = slice(FACE.stop, FACE.stop + HAND_POINTS)
RIGHT_HAND = slice(LEFT_HAND.stop, LEFT_HAND.stop + HAND_POINTS)
NUM_KEYPOINTS = RIGHT_HAND.stop  # 136

# OpenPose BODY_18 joint names, in order. "left"/"right" are the person's own sides.
BODY_JOINTS = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
JOINT = {name: index for index, name in enumerate(BODY_JOINTS)}
# COCO-WholeBody foot order (its points 17..22).
FOOT_JOINTS = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
JOINT.update({name: FEET.start + index for index, name in enumerate(FOOT_JOINTS)})
RIGHT_PUPIL = FACE.start + 68
LEFT_PUPIL = FACE.start + 69

# The 17 OpenPose limbs, in the order that fixes their standard colours.
BODY_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
# Standard OpenPose colours (RGB): limb i takes colour i, joint j takes colour j.
BODY_COLORS = np.array([
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
    [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
    [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
], dtype=np.uint8)
FOOT_LIMBS = tuple((JOINT[ankle], JOINT[f"{side}_{part}"])
                   for side, ankle in (("left", "left_ankle"), ("right", "right_ankle"))
                   for part in ("big_toe", "small_toe", "heel"))

# The hand tree in the hand's own indices (0 is the wrist, then four points per finger).
HAND_EDGES = tuple((0 if joint % 4 == 1 else joint - 1, joint) for joint in range(1, HAND_POINTS))

# COCO-WholeBody 133 -> this layout: body (COCO order) to BODY_18, then feet, face, hands as they are.
COCO_BODY_TO_BODY18 = {
    0: "nose", 1: "left_eye", 2: "right_eye", 3: "left_ear", 4: "right_ear", 5: "left_shoulder",
    6: "right_shoulder", 7: "left_elbow", 8: "right_elbow", 9: "left_wrist", 10: "right_wrist",
    11: "left_hip", 12: "right_hip", 13: "left_knee", 14: "right_knee", 15: "left_ankle", 16: "right_ankle",
}
COCO_WHOLEBODY_POINTS = 133
# The COCO-WholeBody parts after its 17 body points, and where they sit in this layout.
COCO_WHOLEBODY_PARTS = (
    (slice(17, 23), FEET),
    (slice(23, 91), slice(FACE.start, FACE.start + FACE_POINTS_WITHOUT_PUPILS)),
    (slice(91, 112), LEFT_HAND),
    (slice(112, 133), RIGHT_HAND),
)


def _side_groups(name: str) -> tuple[str, str]:
    return f"left_{name}", f"right_{name}"


# Kinematic tree: (parent, child, group) in parent-before-child order. A child keeps its direction
# from the parent and its length is multiplied by its group's factor; "attach" bones are rigid.
def _build_tree() -> tuple[tuple[int, int, str], ...]:
    bones: list[tuple[int, int, str]] = [(JOINT["neck"], JOINT["nose"], "head")]
    for side in ("left", "right"):
        bones += [
            (JOINT["nose"], JOINT[f"{side}_eye"], "head"),
            (JOINT[f"{side}_eye"], JOINT[f"{side}_ear"], "head"),
            (JOINT["neck"], JOINT[f"{side}_shoulder"], f"{side}_shoulder"),
            (JOINT[f"{side}_shoulder"], JOINT[f"{side}_elbow"], f"{side}_upper_arm"),
            (JOINT[f"{side}_elbow"], JOINT[f"{side}_wrist"], f"{side}_forearm"),
            (JOINT["neck"], JOINT[f"{side}_hip"], "torso"),
            (JOINT[f"{side}_hip"], JOINT[f"{side}_knee"], f"{side}_thigh"),
            (JOINT[f"{side}_knee"], JOINT[f"{side}_ankle"], f"{side}_shin"),
        ]
        bones += [(JOINT[f"{side}_ankle"], JOINT[f"{side}_{part}"], f"{side}_foot")
                  for part in ("big_toe", "small_toe", "heel")]
        hand = LEFT_HAND if side == "left" else RIGHT_HAND
        bones.append((JOINT[f"{side}_wrist"], hand.start, "attach"))
        bones += [(hand.start + a, hand.start + b, f"{side}_hand") for a, b in HAND_EDGES]
    bones += [(JOINT["nose"], FACE.start + point, "head") for point in range(FACE_POINTS)]
    return tuple(bones)


KINEMATIC_TREE = _build_tree()
ROOT = JOINT["neck"]
RIGID_GROUP = "attach"
# Groups that have a left and a right member; the others are central.
SIDED_GROUPS = ("shoulder", "upper_arm", "forearm", "thigh", "shin", "foot", "hand")
CENTRAL_GROUPS = ("head", "torso")
BONE_GROUPS = CENTRAL_GROUPS + tuple(group for name in SIDED_GROUPS for group in _side_groups(name))
