"""Blur physics: convolution, kernels, noise and degradation pipelines."""
from .conv import conv2d, conv2d_adjoint, pad, pad_adjoint, MODES
from .fft import psf2otf, otf2psf, rfft2, irfft2, fft2, ifft2
from .kernels import (
    KERNEL_KINDS,
    DefocusBlurGenerator,
    FileKernels,
    GaussianBlurGenerator,
    MixedBlurGenerator,
    MotionBlurGenerator,
    NEGATIVE_TOLERANCE,
    as_kernel,
    center_kernel,
    clean_kernel,
    kernel_centroid,
    delta_kernel,
    defocus_kernel,
    gaussian_kernel,
    get_kernel_generator,
    motion_kernel,
    normalize_kernel,
    pad_kernel,
    trim_kernel,
    project_kernel,
)
from .noise import GaussianNoise, PoissonGaussianNoise, estimate_noise_sigma
from .color import linear_to_srgb, luminance, srgb_to_linear
from .degradations import clip, jpeg, saturate
from .operators import Blur
from .pipeline import DegradationPipeline, crop_valid
from .camera_shake import CameraShakeGenerator, ShakePipeline, render_shake, shake_homographies
from .boundary import BOUNDARIES, Domain, fft_size, gradient_otfs, gradients, gradients_adjoint, taper_window
from .solvers import FourierDataStep, conjugate_gradient, fourier_data_step, kernel_step
from .registration import register_to_kernel, translate
from .proximal import shrink_hyper_laplacian, shrink_tv
from .mixed_blur import mixture_hqs
from .l0_kernel import default_kernel_size, estimate_kernel_l0, estimate_photo_kernel
from .polar import amplitude_phase_lmmse, complex_lmmse_beta, radial_frequency
from .defocus_map import (
    DefocusMapGenerator,
    DefocusPipeline,
    LensAberration,
    aberrated_disk,
    random_depth_maps,
    render_defocus,
    thin_lens_radius,
)
