"""OmniGen2's flow-matching Euler schedule: time runs from 0 (noise) to 1 (image).

Not diffusers' FlowMatchEulerDiscreteScheduler (which runs sigma from 1 to 0): OmniGen2 shifts a
uniform grid t_i = i / n with t' = t / (m - m t + t), m = sqrt(latent pixels) / 40, so that larger
images spend more steps near the noise end (m = 3.2 at 1024x1024), then steps x += (t_next - t) v.
Reads the checkpoint's scheduler_config.json (num_train_timesteps, dynamic_time_shift).

For inpainting both schedulers take diffusers' `set_begin_index` (start at a later step) and
`scale_noise` (an image noised to a time: x_t = t x + (1 - t) noise).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin


def shifted_times(num_steps: int, latent_pixels: int | None, dynamic_shift: bool = True) -> np.ndarray:
    """The n start times of the n steps: a float32 grid, shifted in float64, rounded to float32 (as the original)."""
    t = np.linspace(0, 1, num_steps + 1, dtype=np.float32)[:-1]
    if dynamic_shift and latent_pixels is not None:
        m = np.float64(math.sqrt(latent_pixels) / 40)
        t = t / (m - m * t + t)
    return t.astype(np.float32)


def scale_noise(sample: torch.Tensor, timestep, noise: torch.Tensor) -> torch.Tensor:
    """`sample` noised to time `timestep` (a float, or one per row): the flow's straight line t x + (1 - t) noise."""
    t = torch.as_tensor(timestep, device=sample.device, dtype=sample.dtype).reshape(-1, *[1] * (sample.ndim - 1))
    return t * sample + (1 - t) * noise


class _Inpainting:
    """diffusers' two scheduler hooks for inpainting, shared by both OmniGen2 schedulers."""

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Start at step `begin_index` of the schedule set by set_timesteps (call after it)."""
        self._step_index = int(begin_index)

    @staticmethod
    def scale_noise(sample: torch.Tensor, timestep, noise: torch.Tensor) -> torch.Tensor:
        return scale_noise(sample, timestep, noise)


class OmniGen2EulerScheduler(_Inpainting, SchedulerMixin, ConfigMixin):
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


class OmniGen2DPMSolverScheduler(_Inpainting, SchedulerMixin, ConfigMixin):
    """OmniGen2's "dpmsolver++" option: multistep DPM-Solver++ of order 2 (midpoint form).

    Same time grid as the Euler scheduler, read as noise levels sigma = 1 - t (sigma = 0 appended).
    The velocity v (noise -> image) gives the image estimate x0 = x + sigma v; with
    lambda(sigma) = log((1 - sigma) / sigma) and h = lambda_next - lambda_now, each step is

        x_next = (sigma_next / sigma) x - (1 - sigma_next) (e^-h - 1) (D0 + D1 / 2)

    with D0 = x0 and D1 = (x0 - x0_previous) / r, r = (lambda_now - lambda_previous) / h. The first
    and the last step are first order (D1 = 0); the last one lands exactly on x0.
    """

    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, dynamic_time_shift: bool = True):
        self.set_timesteps(num_train_timesteps)

    def set_timesteps(self, num_inference_steps: int, device=None, latent_pixels: int | None = None) -> None:
        if num_inference_steps < 1:
            raise ValueError("num_inference_steps must be at least 1")
        times = torch.from_numpy(shifted_times(num_inference_steps, latent_pixels, self.config.dynamic_time_shift))
        self.timesteps = times.to(device=device, dtype=torch.float32)
        self.sigmas = torch.cat([1 - times, torch.zeros(1)])
        self.num_inference_steps = num_inference_steps
        self._step_index = 0
        self._previous_x0 = None

    def _log_snr(self, index: int) -> torch.Tensor:
        sigma = self.sigmas[index]
        return torch.log(1 - sigma) - torch.log(sigma)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, return_dict: bool = False):
        k = self._step_index
        sigma, sigma_next = self.sigmas[k], self.sigmas[k + 1]
        x0 = sample + sigma * model_output
        h = self._log_snr(k + 1) - self._log_snr(k)
        decay = (1 - sigma_next) * (torch.exp(-h) - 1.0)
        prev = (sigma_next / sigma) * sample.to(torch.float32) - decay * x0
        last = k == self.num_inference_steps - 1
        if self._previous_x0 is not None and not last:
            r = (self._log_snr(k) - self._log_snr(k - 1)) / h
            prev = prev - 0.5 * decay * (x0 - self._previous_x0) / r
        self._previous_x0 = x0
        self._step_index += 1
        prev = prev.to(model_output.dtype)
        return {"prev_sample": prev} if return_dict else (prev,)

    def __len__(self) -> int:
        return self.config.num_train_timesteps
