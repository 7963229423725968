"""Part A: a pretrained denoiser as an engine.

Every backend (DeepFloyd IF, fundiff's embedded MNIST model) answers one question: at noise level
t of a discrete schedule, where x = a_t x0 + s_t eps with a_t = sqrt(alpha_bar_t) and
s_t = sqrt(1 - alpha_bar_t), what are x0-hat and eps-hat (and, where the model has them, its
learned variance channels)?  The sampling loops (forward process, one-step and iterative denoising,
classifier-free guidance, SDEdit, inpainting, anagrams, hybrids) are plain functions over that
interface, written once.
"""
