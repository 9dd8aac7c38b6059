"""minidl.optim: optimizers and learning-rate schedulers, with PyTorch's names and formulas.

    import minidl.optim as optim
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    for x, y in loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        sched.step()
"""
from . import lr_scheduler
from . import swa_utils
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adamax", "lr_scheduler",
           "swa_utils"]
