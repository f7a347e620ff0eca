import pytest

from functions.core.sources.sharepoint.change_tokens import InvalidChangeToken, parse_change_token

LIST = "5c77031a-9621-4dfc-bb5d-57803a94e91d"


def test_a_change_token_is_read_into_its_change_number_and_ticks():
    token = parse_change_token(f"1;3;{LIST};636000000000000000;1234")
    assert (token.change_number, token.ticks) == (1234, 636000000000000000)


def test_tokens_order_by_change_number_even_when_the_digits_differ_in_count():
    small = parse_change_token(f"1;3;{LIST};636000000000000000;999")
    large = parse_change_token(f"1;3;{LIST};636000000000000001;1000")
    assert small < large
    assert small.row_key < large.row_key


@pytest.mark.parametrize("value", ["", "1;3;x", f"1;3;{LIST};abc;1", f"1;3;{LIST};1;-5", "a;b;c;d;e;f"])
def test_anything_else_is_not_a_change_token(value):
    with pytest.raises(InvalidChangeToken):
        parse_change_token(value)
