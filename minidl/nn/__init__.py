"""minidl.nn: Module, Parameter, layers and initializers (PyTorch's names)."""
from . import init
from .activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .activation import (ELU, Hardsigmoid, Hardswish, Hardtanh, Mish, ReLU6, SiLU,
                         Softmax2d, Softplus)
from .containers import Flatten, Identity, ModuleDict, ModuleList, Sequential
from .linear import Linear
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss,
                   MSELoss, NLLLoss, SmoothL1Loss)
from .module import Module, Parameter
from .conv import Conv2d, ConvTranspose2d
from .upsample import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from .normalization import BatchNorm1d, BatchNorm2d, BatchNormReLU2d
from .normalization import GroupNorm, InstanceNorm2d, LayerNorm
from .dropout import Dropout, Dropout2d
from .activation import (Hardshrink, LogSigmoid, PReLU, Softshrink, Softsign,
                         Tanhshrink)
from .containers import Unflatten
from .padding import (CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d,
                      ConstantPad2d, ConstantPad3d, ReflectionPad1d, ReflectionPad2d,
                      ReflectionPad3d, ReplicationPad1d, ReplicationPad2d, ReplicationPad3d,
                      ZeroPad1d, ZeroPad2d, ZeroPad3d)
from .fold import Fold, PixelShuffle, PixelUnshuffle, Unfold
from .distance import CosineSimilarity, PairwiseDistance
from .embedding import Embedding
from .attention import MultiheadAttention
from .transformer import TransformerEncoder, TransformerEncoderLayer
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from . import functional, utils
