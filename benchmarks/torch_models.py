"""The PyTorch twins of minidl's nets used as the speed reference in bench_train.py.

Same architectures as ``nets.get_model(name)``: CIFAR ResNet-6n+2 with option-A shortcuts
(subsample, zero-pad channels), DenseNet-BC (bottleneck, compression 0.5), Wide ResNet,
MobileNetV2 (CIFAR strides) and the CIFAR ViT (torch's own encoder layers). Written here so
the benchmarks need nothing outside this repository; imported only when torch is installed.
"""
import torch
import torch.nn as tnn
import torch.nn.functional as tF


class BasicBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.pad = cout - cin
        self.stride = stride

    def forward(self, x):
        out = tF.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x
        if self.stride != 1 or self.pad:
            short = tF.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.pad))
        return tF.relu(out + short)


class CifarResNet(tnn.Module):
    def __init__(self, depth, num_classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = tnn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, width in enumerate((16, 32, 64)):
            for j in range(n):
                layers.append(BasicBlock(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width
        self.layers = tnn.Sequential(*layers)
        self.fc = tnn.Linear(64, num_classes)

    def forward(self, x):
        x = self.layers(tF.relu(self.bn(self.conv(x))))
        return self.fc(x.mean((2, 3)))


class DenseLayer(tnn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.bn1 = tnn.BatchNorm2d(cin)
        self.conv1 = tnn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(4 * growth)
        self.conv2 = tnn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, feats):
        x = torch.cat(feats, 1)
        return self.conv2(tF.relu(self.bn2(self.conv1(tF.relu(self.bn1(x))))))


class DenseNetBC(tnn.Module):
    def __init__(self, depth=100, growth=12, num_classes=10):
        super().__init__()
        n = (depth - 4) // 6
        c = 2 * growth
        self.conv = tnn.Conv2d(3, c, 3, 1, 1, bias=False)
        self.blocks = tnn.ModuleList()
        self.trans = tnn.ModuleList()
        for b in range(3):
            layers = tnn.ModuleList()
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            self.blocks.append(layers)
            if b < 2:
                out = c // 2
                self.trans.append(tnn.Sequential(tnn.BatchNorm2d(c), tnn.ReLU(),
                                                 tnn.Conv2d(c, out, 1, bias=False),
                                                 tnn.AvgPool2d(2)))
                c = out
        self.bn = tnn.BatchNorm2d(c)
        self.fc = tnn.Linear(c, num_classes)

    def forward(self, x):
        x = self.conv(x)
        for b, layers in enumerate(self.blocks):
            feats = [x]
            for layer in layers:
                feats.append(layer(feats))
            x = torch.cat(feats, 1)
            if b < 2:
                x = self.trans[b](x)
        return self.fc(tF.relu(self.bn(x)).mean((2, 3)))


class WideBlock(tnn.Module):
    """Pre-activation B(3,3); a 1x1 conv on the pre-activated input where the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.conv1 = tnn.BatchNorm2d(cin), tnn.Conv2d(cin, cout, 3, stride, 1,
                                                                bias=False)
        self.bn2, self.conv2 = tnn.BatchNorm2d(cout), tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.proj = (tnn.Conv2d(cin, cout, 1, stride, bias=False)
                     if stride != 1 or cin != cout else None)

    def forward(self, x):
        a = tF.relu(self.bn1(x))
        y = self.conv2(tF.relu(self.bn2(self.conv1(a))))
        return y + (x if self.proj is None else self.proj(a))


class WideResNet(tnn.Module):
    def __init__(self, depth, k):
        super().__init__()
        n, widths, layers, cin = (depth - 4) // 6, (16 * k, 32 * k, 64 * k), [], 16
        self.stem = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
        for w, s in zip(widths, (1, 2, 2)):
            for j in range(n):
                layers.append(WideBlock(cin, w, s if j == 0 else 1))
                cin = w
        self.blocks, self.bn, self.fc = tnn.Sequential(*layers), tnn.BatchNorm2d(cin), \
            tnn.Linear(cin, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(tF.relu(self.bn(x)).mean((2, 3)))


class InvertedResidual(tnn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid, layers = cin * t, []
        if t != 1:
            layers += [tnn.Conv2d(cin, hid, 1, bias=False), tnn.BatchNorm2d(hid), tnn.ReLU6()]
        layers += [tnn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False),
                   tnn.BatchNorm2d(hid), tnn.ReLU6(),
                   tnn.Conv2d(hid, cout, 1, bias=False), tnn.BatchNorm2d(cout)]
        self.body, self.residual = tnn.Sequential(*layers), stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(tnn.Module):
    """The paper's table; CIFAR strides: stem and the first 24-channel stage at stride 1."""

    def __init__(self):
        super().__init__()
        table = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                 (6, 160, 3, 2), (6, 320, 1, 1)]
        layers, cin = [tnn.Conv2d(3, 32, 3, 1, 1, bias=False), tnn.BatchNorm2d(32),
                       tnn.ReLU6()], 32
        for t, c, n, s in table:
            for j in range(n):
                layers.append(InvertedResidual(cin, c, s if j == 0 else 1, t))
                cin = c
        layers += [tnn.Conv2d(cin, 1280, 1, bias=False), tnn.BatchNorm2d(1280), tnn.ReLU6()]
        self.features, self.drop, self.fc = tnn.Sequential(*layers), tnn.Dropout(0.2), \
            tnn.Linear(1280, 10)

    def forward(self, x):
        return self.fc(self.drop(self.features(x).mean((2, 3))))


class ViT(tnn.Module):
    """Patch 4, dim 192, depth 9, heads 3, MLP 384, pre-norm GELU layers (nets.vit's default)."""

    def __init__(self, dim=192, depth=9, heads=3, mlp=384):
        super().__init__()
        self.patch = tnn.Conv2d(3, dim, 4, 4)
        self.cls = tnn.Parameter(torch.zeros(1, 1, dim))
        self.pos = tnn.Parameter(torch.zeros(1, 65, dim))
        layer = tnn.TransformerEncoderLayer(dim, heads, mlp, 0.0, "gelu", 1e-6, batch_first=True,
                                            norm_first=True)
        self.encoder = tnn.TransformerEncoder(layer, depth, tnn.LayerNorm(dim, eps=1e-6),
                                              enable_nested_tensor=False)
        self.head = tnn.Linear(dim, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.encoder(x)[:, 0])


def get_model(name):
    """The torch twin of ``nets.get_model(name)`` for the benchmarked names."""
    if name.startswith("resnet") and name[6:].isdigit():
        return CifarResNet(int(name[6:]))
    if name == "densenet_bc_100":
        return DenseNetBC(100, 12)
    if name.startswith("wrn") and "_" in name:
        depth, k = name[3:].split("_")
        return WideResNet(int(depth), int(k))
    if name == "mobilenetv2":
        return MobileNetV2()
    if name == "vit":
        return ViT()
    raise ValueError(f"bench_train: no torch twin for {name!r} (have resnetN, densenet_bc_100, "
                     "wrnD_K, mobilenetv2, vit)")
