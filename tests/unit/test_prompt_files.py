"""The user's prompts: a JSONL file in the field's forms, or a dataset; errors name the file and line."""

import json

import pytest

from pytest_inferlab.run.prompt_files import PromptFileError, source_of, user_prompts
from pytest_inferlab.run.workloads import prompt_texts


def write(tmp_path, lines, name="mine.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_every_form_of_a_line_gives_its_prompt(tmp_path):
    path = write(tmp_path, [
        {"text": "plain text"},
        {"prompt": "a prompt"},
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first user"},
                      {"role": "assistant", "content": "ok"}]},
        {"conversations": [{"from": "human", "value": "a ShareGPT turn"}, {"from": "gpt", "value": "reply"}]},
        "",
    ])
    source = source_of(path.name, None, tmp_path)
    assert source == f"file:{path.resolve()}"
    prompts = user_prompts(source)
    assert [p.text for p in prompts] == ["plain text", "a prompt", "first user", "a ShareGPT turn"]
    assert prompts[3].where == f"{path.resolve()}:4"
    assert prompt_texts(source) == ("plain text", "a prompt", "first user", "a ShareGPT turn")


@pytest.mark.parametrize("lines, named", [
    ([{"text": "ok"}, "{not json"], ":2: not JSON"),
    ([{"text": "ok"}, {"question": "?"}], ":2: no prompt in it"),
    ([{"messages": [{"role": "assistant", "content": "only an answer"}]}], ":1: no prompt in it"),
    (["", "  "], "no prompts (an empty file)"),
])
def test_a_bad_prompt_file_names_its_line(tmp_path, lines, named):
    path = write(tmp_path, lines, name=f"bad{abs(hash(named))}.jsonl")
    with pytest.raises(PromptFileError) as caught:
        user_prompts(source_of(str(path), None, tmp_path))
    assert named in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_file_and_a_bad_dataset_name_are_errors(tmp_path):
    with pytest.raises(PromptFileError, match="no such file"):
        source_of("nowhere.jsonl", None, tmp_path)
    with pytest.raises(PromptFileError, match="dataset:NAME"):
        source_of("dataset:", None, tmp_path)
    assert source_of("dataset:me/chats", "question", tmp_path) == "dataset:me/chats:train:question"


def test_a_dataset_in_the_local_cache_gives_its_column(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "chats"
    datasets.Dataset.from_dict({"question": ["q one", "q two"], "n": [1, 2]}).to_json(str(folder / "train.jsonl"))
    source = source_of(f"dataset:{folder}:train", "question", tmp_path)
    assert [p.text for p in user_prompts(source)] == ["q one", "q two"]
    with pytest.raises(PromptFileError, match="no column 'answer'; its columns: question, n"):
        user_prompts(source_of(f"dataset:{folder}:train", "answer", tmp_path))
