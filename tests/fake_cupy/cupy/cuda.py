"""fake cupy.cuda: one device, synchronous streams."""


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise RuntimeError(f"fake cupy: no device {self.id} (one fake GPU, device 0)")
        self.compute_capability = "90"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def use(self):
        return self

    def synchronize(self):
        pass


class _Stream:
    def synchronize(self):
        pass


def get_current_stream():
    return _Stream()


class runtime:
    @staticmethod
    def getDeviceCount():
        return 1
