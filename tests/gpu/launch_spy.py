"""A stand-in for a Triton kernel in the GPU tests (and the interpreted ones that put this folder on their path):
records each launch (grid, positional and keyword arguments) and runs the kernel."""


class LaunchSpy:
    def __init__(self, kernel):
        self.kernel, self.launches = kernel, []

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.launches.append((grid, args, kwargs))
            return self.kernel[grid](*args, **kwargs)

        return launch
