"""SplicedEmbedding: the frozen token table with trainable rows for the new tokens."""

from __future__ import annotations

import torch
from torch import nn

from trainer.embeddings import SplicedEmbedding, unsplice

VOCAB, DIM, FIRST_NEW = 12, 6, 10


def spliced_table() -> SplicedEmbedding:
    torch.manual_seed(0)
    base = nn.Embedding(VOCAB, DIM)
    base.weight.requires_grad_(False)
    return SplicedEmbedding(base, FIRST_NEW, torch.randn(2, DIM))


def test_new_tokens_read_the_trained_rows_and_old_tokens_the_frozen_table():
    table = spliced_table()
    ids = torch.tensor([[1, 10, 11, 3]])
    out = table(ids)
    assert torch.equal(out[0, 0], table.base.weight[1])
    assert torch.equal(out[0, 3], table.base.weight[3])
    assert torch.equal(out[0, 1], table.vectors[0]) and torch.equal(out[0, 2], table.vectors[1])


def test_only_the_rows_of_tokens_in_the_prompt_get_a_gradient():
    table = spliced_table()
    table(torch.tensor([[2, 11, 4]])).sum().backward()
    assert table.base.weight.grad is None
    assert torch.all(table.vectors.grad[0] == 0) and torch.all(table.vectors.grad[1] == 1)


def test_a_prompt_without_new_tokens_is_the_frozen_table_exactly():
    table = spliced_table()
    ids = torch.tensor([[0, 5, 9]])
    out = table(ids)
    assert torch.equal(out, table.base(ids))
    out.sum().backward()
    assert torch.all(table.vectors.grad == 0)


def test_unsplice_writes_the_learned_rows_into_the_plain_table():
    table = spliced_table()

    class Encoder:
        def set_input_embeddings(self, module):
            self.embeddings = module

    encoder = Encoder()
    unsplice(encoder, table)
    assert encoder.embeddings is table.base
    assert torch.equal(table.base.weight[FIRST_NEW:], table.vectors.detach())
    ids = torch.tensor([[3, 10, 11]])
    assert torch.equal(table.base(ids), table(ids))
