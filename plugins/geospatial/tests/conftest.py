import torch


def pytest_configure(config):
    # rasterio 1.4 with affine 3 warns inside its own window/merge code on every read
    config.addinivalue_line("filterwarnings",
                            "ignore:Use `@` matmul:PendingDeprecationWarning")


# Tiny models on tiny tensors: intra-op threads only add synchronisation, which on a loaded
# machine costs more than the arithmetic (measured 18x slower per step with 2 threads).
torch.set_num_threads(1)
