"""Data specs for objectives built in a test without a data set: a char vocabulary with the
special tokens the objective's class asks for, appended as the data builders append them."""
from __future__ import annotations

from pretrainx.data import tokenizer as tokenizer_lib
from pretrainx.data.basic_tokenizers import CharTokenizer
from pretrainx.objectives.base import DataSpec


def char_spec(objective_cls, config, chars, **info) -> DataSpec:
    """The spec a char tokenizer over ``chars`` gives ``objective_cls`` under ``config``."""
    specials = objective_cls.data_request(config).special_tokens
    tokenizer = tokenizer_lib.with_special_tokens(CharTokenizer(list(chars)), specials)
    return DataSpec(tokenizer, info)


def built(objective_cls, config, chars, **info):
    """``objective_cls`` built in one step on a char vocabulary over ``chars``."""
    return objective_cls(config, char_spec(objective_cls, config, chars, **info))
