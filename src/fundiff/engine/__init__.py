"""The core math of Part A: schedules, the denoiser interface, CFG, the loops, views and decompositions.

The backends that implement the interface (DeepFloyd IF, fundiff's embedded MNIST model) live one
layer up, in :mod:`fundiff.backends`; the pipelines over both in :mod:`fundiff.pipelines`.


Every backend (DeepFloyd IF, fundiff's embedded MNIST model) answers one question: at noise level
t of a discrete schedule, where x = a_t x0 + s_t eps with a_t = sqrt(alpha_bar_t) and
s_t = sqrt(1 - alpha_bar_t), what are x0-hat and eps-hat (and, where the model has them, its
learned variance channels)?  The sampling loops (forward process, one-step and iterative denoising,
classifier-free guidance, SDEdit, inpainting, anagrams, hybrids) are plain functions over that
interface, written once.
"""
