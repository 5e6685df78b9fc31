"""The pose pipeline of the pose-based mode: extraction, augmentation against shape leakage, rendering.

``types`` holds the pose sequence and its POSE_KEYPOINT / JSON exchange, ``skeleton`` the keypoint
layout and kinematic tree, ``augment`` bone-length scaling and clip-level box normalization,
``render`` the OpenPose-style images, ``extract`` the frame loop over one backend
(``extract_mediapipe``, ``extract_mediapipe_multi``, ``extract_dwpose``, ``extract_openpose``; weights
found by ``model_files``), ``detect_people`` the people boxes ``extract_mediapipe_multi`` crops to,
``track`` the stable person ids of multi-person clips.
Backends import their runtimes (mediapipe, onnxruntime, controlnet_aux) only when used.
"""
