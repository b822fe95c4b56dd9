import math

import pytest
import torch

from occkit.geometry.transforms import (
    apply_transform,
    invert_transform,
    make_transform,
    matrix_to_quat,
    pose_from_transform,
    quat_to_matrix,
    rotation_z,
    transform_from_pose,
)


def random_quats(n, gen):
    q = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[:, :1] < 0, -q, q)


def test_quaternion_hand_values():
    # 90 degrees about z: (w, x, y, z) = (cos 45, 0, 0, sin 45) maps x -> y
    h = math.sqrt(0.5)
    R = quat_to_matrix(torch.tensor([h, 0.0, 0.0, h], dtype=torch.float64))
    assert torch.allclose(
        R @ torch.tensor([1.0, 0, 0], dtype=torch.float64), torch.tensor([0.0, 1, 0], dtype=torch.float64)
    )
    assert torch.allclose(R, rotation_z(math.pi / 2))


def test_quaternion_round_trip():
    gen = torch.Generator().manual_seed(0)
    q = random_quats(500, gen)
    R = quat_to_matrix(q)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(500, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(500, dtype=torch.float64))
    assert torch.allclose(matrix_to_quat(R), q, atol=1e-10)
    # 180-degree rotations (w = 0) are the hard case for the trace formula
    for axis in torch.eye(3, dtype=torch.float64):
        q180 = torch.cat([torch.zeros(1, dtype=torch.float64), axis])
        assert torch.allclose(quat_to_matrix(matrix_to_quat(quat_to_matrix(q180))), quat_to_matrix(q180), atol=1e-12)


def test_invert_compose_apply():
    gen = torch.Generator().manual_seed(1)
    T_b_from_a = make_transform(
        quat_to_matrix(random_quats(1, gen))[0], torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    )
    T_c_from_b = transform_from_pose([0.5, 0.0, -1.0], random_quats(1, gen)[0].tolist())
    p_a = torch.randn(10, 3, generator=gen, dtype=torch.float64)
    T_c_from_a = T_c_from_b @ T_b_from_a
    assert torch.allclose(
        apply_transform(T_c_from_a, p_a), apply_transform(T_c_from_b, apply_transform(T_b_from_a, p_a))
    )
    assert torch.allclose(apply_transform(invert_transform(T_b_from_a), apply_transform(T_b_from_a, p_a)), p_a)
    assert torch.allclose(invert_transform(T_b_from_a), torch.linalg.inv(T_b_from_a))


def test_pose_round_trip_and_errors():
    T = transform_from_pose([1, 2, 3], [0.9, 0.1, -0.3, 0.2])
    T2 = transform_from_pose(**pose_from_transform(T))
    assert torch.allclose(T, T2, atol=1e-12)
    with pytest.raises(ValueError, match="pose"):
        transform_from_pose([1, 2], [1, 0, 0, 0])
    with pytest.raises(ValueError, match="zero quaternion"):
        quat_to_matrix(torch.zeros(4))
    with pytest.raises(ValueError, match="points"):
        apply_transform(torch.eye(4), torch.zeros(5, 2))


def test_rigid_inverse_equals_the_general_one_on_poses():
    """invert_transform (R^T: ONNX export's stand-in for torch.linalg.inv of camera poses)."""
    gen = torch.Generator().manual_seed(2)
    T = make_transform(
        quat_to_matrix(random_quats(6, gen)), torch.randn(6, 3, generator=gen, dtype=torch.float64) * 10
    ).float()
    assert torch.allclose(invert_transform(T), torch.linalg.inv(T), atol=1e-5)
    assert torch.allclose(invert_transform(T) @ T, torch.eye(4).expand(6, 4, 4), atol=1e-5)
