"""The course may be reused: code under MIT, lesson text and data under CC BY 4.0."""
import tomllib

from autograder.settings import REPO


def test_the_code_licence_is_mit():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text and "Copyright (c)" in text
    assert "LICENSE-content.md" in text and "CC BY 4.0" in text


def test_the_lesson_text_and_the_data_are_cc_by_4():
    text = (REPO / "LICENSE-content.md").read_text()
    assert "Creative Commons Attribution 4.0 International" in text
    assert "https://creativecommons.org/licenses/by/4.0/legalcode" in text
    assert "Alpaydin" in text and "Kaynak" in text  # the data's authors, credited
    assert "CC BY 4.0" in (REPO / "datasets" / "README.md").read_text()


def test_the_readme_states_both_licences():
    readme = (REPO / "README.md").read_text()
    assert "## Licence" in readme
    section = readme.split("## Licence", 1)[1]
    for words in ("MIT", "`LICENSE`", "CC BY 4.0", "`LICENSE-content.md`", "Lesson text", "Code"):
        assert words in section, words


def test_the_package_metadata_names_both():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT AND CC-BY-4.0"
    assert project["license-files"] == ["LICENSE", "LICENSE-content.md"]
