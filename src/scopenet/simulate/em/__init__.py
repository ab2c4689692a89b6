"""Synthetic electron micrographs with exact ground truth (``scopenet.simulate.em``).

- :mod:`.noise`: Poisson dose, Ede's low/high-dose training pairs, detector read noise/gain/MTF,
  STEM scan jitter and drift.
- :mod:`.lattice`: HAADF/BF-STEM atom columns from ASE crystals along a zone axis, with vacancies,
  dopants, amorphous support and labels (pixel and metre coordinates, column masks).
- :mod:`.hrtem`: HRTEM through a phase object and a contrast transfer function.
- :mod:`.meso`: non-crystalline textures (particles, cells/membranes, grains, FIB milling).
- :mod:`.abtem_backend`: optional multislice via abTEM (``pip install 'scopenet[sim]'``).

>>> from scopenet.simulate import em
>>> batch = em.simulate_batch(2, size=128, seed=0, kind="stem")
>>> batch["images"].shape
(2, 128, 128)
"""
from .api import EM_KINDS, EMSample, demo_section, gallery_png, simulate_batch, simulate_image, write_dataset
from .hrtem import (Optics, chi, ctf_1d, ctf_zeros, hrtem_image, image_phase_object, scherzer_defocus,
                    transfer_function, wavelength, weak_phase_image)
from .lattice import (LatticeImage, ProjectedCell, project_atoms, random_columns, render_gaussians, stem_image,
                      structure_library)
from .meso import MESO_KINDS, meso_image
from .noise import (apply_line_shifts, detector, ede_high_dose_scale, ede_low_dose_scale, ede_noisy_pair,
                    mtf_blur, poisson_dose, realistic_noise, scan_line_shifts, stem_scan_distort)

__all__ = [
    "EM_KINDS", "EMSample", "demo_section", "gallery_png", "simulate_batch", "simulate_image", "write_dataset",
    "Optics", "chi", "ctf_1d", "ctf_zeros", "hrtem_image", "image_phase_object", "scherzer_defocus",
    "transfer_function", "wavelength", "weak_phase_image",
    "LatticeImage", "ProjectedCell", "project_atoms", "random_columns", "render_gaussians", "stem_image",
    "structure_library", "MESO_KINDS", "meso_image",
    "apply_line_shifts", "detector", "ede_high_dose_scale", "ede_low_dose_scale", "ede_noisy_pair", "mtf_blur",
    "poisson_dose", "realistic_noise", "scan_line_shifts", "stem_scan_distort",
]
