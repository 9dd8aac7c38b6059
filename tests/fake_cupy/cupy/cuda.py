"""fake cupy.cuda: one device; streams that run work at once, or record it while capturing.

Stream capture is emulated the way CUDA does it, as far as minidl can observe: while the
current stream captures, device work is recorded, not run (pure array operations still
compute a result now, so shapes are known, and every replay recomputes it into the same
array; in-place operations, kernel launches and cuBLAS calls run only when the graph is
launched), and anything that makes the host wait for the device raises. A ``Graph`` replays
the recorded work in order; Python scalars were recorded by value, device arrays by
reference, as in a real graph.
"""
import contextlib
import itertools
import time


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
        capturing = [s for s in _streams.values() if s.tape is not None]
        for s in capturing:
            s.invalidated = True
        if capturing:
            raise RuntimeError("fake cupy: device synchronize during stream capture")


_ids = itertools.count(1000)
_streams = {}              # ptr -> Stream
_current = []              # the `with stream:` stack


class Stream:
    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0 if null else next(_ids)
        self.tape = None   # the recorded work while capturing
        self.invalidated = False   # a refused operation broke the capture (as in CUDA)
        _streams[self.ptr] = self

    def __enter__(self):
        _current.append(self)
        return self

    def __exit__(self, *exc):
        _current.pop()
        return False

    def use(self):
        _current[:] = [self]
        return self

    def synchronize(self):
        if self.tape is not None:
            self.invalidated = True
            raise RuntimeError("fake cupy: synchronize of a capturing stream")

    def begin_capture(self, mode=None):
        if self.ptr == 0:
            raise RuntimeError("cannot capture on the default (legacy) stream")
        if self.tape is not None:
            raise RuntimeError("fake cupy: the stream is already capturing")
        self.tape, self.invalidated = [], False

    def end_capture(self):
        if self.tape is None:
            raise RuntimeError("fake cupy: end_capture on a stream that is not capturing")
        tape, self.tape = self.tape, None
        if self.invalidated:
            self.invalidated = False
            raise RuntimeError("fake cupy: end_capture: cudaErrorStreamCaptureInvalidated "
                               "(operation failed due to a previous error during capture)")
        return Graph(tape)

    def is_capturing(self):
        return self.tape is not None

    def record(self, event=None):
        return event if event is not None else Event()

    def wait_event(self, event):
        pass


Stream.null = Stream(null=True)


def get_current_stream():
    return _current[-1] if _current else Stream.null


def _tape():
    """The current stream's recording when it captures, else None."""
    return get_current_stream().tape


class Event:
    """Work runs at once here, so an event's time is the host clock when it was recorded."""
    done = True

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self._t = None

    def record(self, stream=None):
        self._t = time.perf_counter()

    def synchronize(self):
        pass


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded events (CuPy's signature)."""
    if start_event._t is None or end_event._t is None:
        raise RuntimeError("fake cupy: get_elapsed_time of an event that was never recorded")
    return 1000.0 * (end_event._t - start_event._t)


class Graph:
    def __init__(self, tape):
        self._tape = tape

    def launch(self, stream=None):
        if get_current_stream().tape is not None:
            raise RuntimeError("fake cupy: launching a graph inside a capture is not emulated")
        for work in self._tape:
            work()

    def upload(self, stream=None):
        pass


class MemoryPool:
    """Allocations are NumPy's here; the pool only has to exist."""

    def malloc(self, size):
        raise NotImplementedError("fake cupy: MemoryPool.malloc is not emulated")


def using_allocator(allocator=None):
    return contextlib.nullcontext()


class runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def runtimeGetVersion():
        return 13000                  # CUDA 13.0, the target
