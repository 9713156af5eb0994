"""recipient_chunks: a long list as the keyword arguments of one mapped send per chunk."""

from __future__ import annotations

import pytest

from airflow_provider_qconn.exceptions import InvalidParameterError
from airflow_provider_qconn.operators.whatsapp import recipient_chunks


def test_chunks_carry_each_recipients_variables_and_a_number_written_twice_lands_once():
    chunks = recipient_chunks(
        ["+598 99 100 001", "099100002", "+59899100001", "not a number", "+59899100003"],
        chunk_size=2,
        recipient_variables={"099 100 002": {"1": "Bruno"}},
        default_region="UY",
    )
    assert chunks == [
        {
            "recipients": ["+59899100001", "+59899100002", "not a number"],
            "recipient_variables": {"+59899100002": {"1": "Bruno"}},
        },
        {"recipients": ["+59899100003"]},
    ]
    with pytest.raises(InvalidParameterError, match="chunk_size"):
        recipient_chunks(["+59899100001"], chunk_size=0)
