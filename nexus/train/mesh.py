"""The device mesh: data, fsdp and tensor axes, sizes from the config (one of them may be -1).

The mesh uses ``AxisType.Auto`` on purpose: parameter and batch shardings are given explicitly at
the jit boundary (from logical axis rules) and XLA's sharding propagation places the intermediates,
which keeps the same model code valid on 1 CPU, 8 fake devices, a GPU or a pod.
"""

import math

import jax
from jax.sharding import Mesh
import numpy as np

MESH_AXES = ("data", "fsdp", "tensor")


def mesh_shape(mesh_cfg, num_devices: int) -> tuple[int, int, int]:
  """Resolves the configured axis sizes (a ``MeshConfig``: at most one -1) against the device count."""
  sizes = [int(getattr(mesh_cfg, axis)) for axis in MESH_AXES]
  known = math.prod(size for size in sizes if size != -1)
  if -1 in sizes:
    if num_devices % known:
      raise ValueError(
        f"mesh sizes {dict(zip(MESH_AXES, sizes))} do not divide {num_devices} devices; "
        "set --config.mesh.* so their product divides the device count."
      )
    sizes[sizes.index(-1)] = num_devices // known
  if math.prod(sizes) != num_devices:
    raise ValueError(
      f"mesh sizes {dict(zip(MESH_AXES, sizes))} use {math.prod(sizes)} devices but {num_devices} exist; "
      "make their product equal the device count (or set one axis to -1)."
    )
  return sizes[0], sizes[1], sizes[2]


def make_mesh(mesh_cfg, devices=None) -> Mesh:
  """Builds the (data, fsdp, tensor) mesh over ``devices`` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else devices
  shape = mesh_shape(mesh_cfg, len(devices))
  device_array = np.asarray(devices).reshape(shape)
  return Mesh(device_array, MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * len(MESH_AXES))
