"""Independent reference implementations, written the way their sources write them (d2l.ai's chapters,
the seed articles), with explicit input channels instead of lazy modules. The presets are checked
against these, so a preset cannot agree with itself by construction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# ------------------------------------------------------------------ d2l.ai, chapter "ResNet"
class D2LResidual(nn.Module):
    def __init__(self, in_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(in_channels, num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def d2l_b1():
    return nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


def d2l_resnet18():
    blocks, c_in = [], 64
    for i, c in enumerate((64, 128, 256, 512)):
        for j in range(2):
            first = j == 0 and i > 0
            blocks.append(D2LResidual(c_in, c, use_1x1conv=first, strides=2 if first else 1))
            c_in = c
    return nn.Sequential(d2l_b1(), *blocks, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10))


# ------------------------------------------------------------------ d2l.ai, chapter "DenseNet"
def conv_block(in_channels, num_channels):
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(),
                         nn.Conv2d(in_channels, num_channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    def __init__(self, num_convs, in_channels, num_channels):
        super().__init__()
        self.net = nn.Sequential(*[conv_block(in_channels + i * num_channels, num_channels)
                                   for i in range(num_convs)])

    def forward(self, X):
        for blk in self.net:
            X = torch.cat((X, blk(X)), dim=1)
        return X


def transition_block(in_channels, num_channels):
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, num_channels, kernel_size=1),
                         nn.AvgPool2d(kernel_size=2, stride=2))


def d2l_densenet():
    num_channels, growth_rate, blks = 64, 32, []
    for i, num_convs in enumerate([4, 4, 4, 4]):
        blks.append(DenseBlock(num_convs, num_channels, growth_rate))
        num_channels += num_convs * growth_rate
        if i != 3:
            blks.append(transition_block(num_channels, num_channels // 2))
            num_channels = num_channels // 2
    return nn.Sequential(d2l_b1(), *blks, nn.BatchNorm2d(num_channels), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)),
                         nn.Flatten(), nn.Linear(num_channels, 10))


# ------------------------------------------------------------------ d2l.ai, chapter "GoogLeNet"
class D2LInception(nn.Module):
    def __init__(self, in_channels, c1, c2, c3, c4):
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def d2l_googlenet():
    def pool():
        return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(), pool())
    b2 = nn.Sequential(nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(), nn.Conv2d(64, 192, kernel_size=3, padding=1),
                       nn.ReLU(), pool())
    b3 = nn.Sequential(D2LInception(192, 64, (96, 128), (16, 32), 32), D2LInception(256, 128, (128, 192), (32, 96), 64),
                       pool())
    b4 = nn.Sequential(D2LInception(480, 192, (96, 208), (16, 48), 64), D2LInception(512, 160, (112, 224), (24, 64), 64),
                       D2LInception(512, 128, (128, 256), (24, 64), 64), D2LInception(512, 112, (144, 288), (32, 64), 64),
                       D2LInception(528, 256, (160, 320), (32, 128), 128), pool())
    b5 = nn.Sequential(D2LInception(832, 256, (160, 320), (32, 128), 128),
                       D2LInception(832, 384, (192, 384), (48, 128), 128), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
    return nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(1024, 10))


# ------------------------------------------------------------------ seed 000: ResNet-18-like on 3x96x96
class Seed000Block(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = (nn.Conv2d(in_channels, out_channels, 1, stride=stride)
                         if stride != 1 or in_channels != out_channels else None)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))   # ReLU before the add ...
        out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu(out)                        # ... and again after it


def seed000_resnet():
    layers, c_in = [], 64
    for i, c in enumerate((64, 128, 256, 512)):
        for j in range(2):
            layers.append(Seed000Block(c_in, c, 2 if (j == 0 and i > 0) else 1))
            c_in = c
    return nn.Sequential(nn.Conv2d(3, 64, 7, stride=2), nn.MaxPool2d(3, 2), *layers, nn.AvgPool2d(3), nn.Flatten(),
                         nn.Linear(512, 10))


# ------------------------------------------------------------------ seed 002: Inception on MNIST
class Seed002Inception(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch1x1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch5x5_1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch5x5_2 = nn.Conv2d(16, 24, kernel_size=5, padding=2)
        self.branch3x3_1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch3x3_2 = nn.Conv2d(16, 24, kernel_size=3, padding=1)
        self.branch3x3_3 = nn.Conv2d(24, 24, kernel_size=3, padding=1)
        self.branch_pool = nn.Conv2d(in_channels, 24, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3_3(self.branch3x3_2(self.branch3x3_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b5, b3, bp], dim=1)


class Seed002Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(88, 20, kernel_size=5)
        self.incep1 = Seed002Inception(10)
        self.incep2 = Seed002Inception(20)
        self.mp = nn.MaxPool2d(2)
        self.fc = nn.Linear(1408, 10)

    def forward(self, x):
        x = F.relu(self.mp(self.conv1(x)))
        x = self.incep1(x)
        x = F.relu(self.mp(self.conv2(x)))
        x = self.incep2(x)
        return self.fc(x.view(x.size(0), -1))


# ------------------------------------------------------------------ seed 004: small ResNet on MNIST
class Seed004Block(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                                         nn.BatchNorm2d(out_channels))
                           if stride != 1 or in_channels != out_channels else None)

    def forward(self, x):
        residual = self.downsample(x) if self.downsample is not None else x
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + residual)


def seed004_resnet():
    layers, c_in = [], 16
    for c, s in ((16, 1), (32, 2), (64, 2)):
        layers += [Seed004Block(c_in, c, s), Seed004Block(c, c, 1)]
        c_in = c
    return nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), *layers,
                         nn.AvgPool2d(8), nn.Flatten(), nn.Linear(64, 10))


REFERENCES = {
    "d2l-resnet18": d2l_resnet18,
    "d2l-densenet": d2l_densenet,
    "d2l-googlenet": d2l_googlenet,
    "seed000-resnet": seed000_resnet,
    "seed002-inception": Seed002Net,
    "seed004-resnet": seed004_resnet,
}
