"""OmniGen2's flow-matching Euler schedule: time runs from 0 (noise) to 1 (image).

Not diffusers' FlowMatchEulerDiscreteScheduler (which runs sigma from 1 to 0): OmniGen2 shifts a
uniform grid t_i = i / n with t' = t / (m - m t + t), m = sqrt(latent pixels) / 40, so that larger
images spend more steps near the noise end (m = 3.2 at 1024x1024), then steps x += (t_next - t) v.
Reads the checkpoint's scheduler_config.json (num_train_timesteps, dynamic_time_shift).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin


def shifted_times(num_steps: int, latent_pixels: int | None, dynamic_shift: bool = True) -> np.ndarray:
    """The n start times of the n Euler steps (float32, like the original)."""
    t = np.linspace(0, 1, num_steps + 1, dtype=np.float32)[:-1]
    if dynamic_shift and latent_pixels is not None:
        m = math.sqrt(latent_pixels) / 40
        t = t / (m - m * t + t)
    return t


class OmniGen2EulerScheduler(SchedulerMixin, ConfigMixin):
    """Euler steps along t in [0, 1]; `timesteps` are the step start times, `step` moves to the next."""

    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, dynamic_time_shift: bool = True):
        self.timesteps = torch.linspace(0, 1, num_train_timesteps + 1)[:-1]
        self._times = torch.cat([self.timesteps, torch.ones(1)])
        self._step_index = 0

    def set_timesteps(self, num_inference_steps: int, device=None, latent_pixels: int | None = None) -> None:
        if num_inference_steps < 1:
            raise ValueError("num_inference_steps must be at least 1")
        times = torch.from_numpy(shifted_times(num_inference_steps, latent_pixels, self.config.dynamic_time_shift))
        self.timesteps = times.to(device=device, dtype=torch.float32)
        self._times = torch.cat([self.timesteps, torch.ones(1, device=self.timesteps.device)])
        self.num_inference_steps = num_inference_steps
        self._step_index = 0

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, return_dict: bool = False):
        """One Euler step from the current time to the next; computed in float32."""
        dt = self._times[self._step_index + 1] - self._times[self._step_index]
        prev = (sample.to(torch.float32) + dt * model_output).to(model_output.dtype)
        self._step_index += 1
        return {"prev_sample": prev} if return_dict else (prev,)

    def __len__(self) -> int:
        return self.config.num_train_timesteps
