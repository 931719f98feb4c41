"""A small two-turn evaluation set, MT-Bench-style: a question, then a follow-up that depends on the answer.

Written for lamini-lm (CC0: no third-party text), ten items over writing, reasoning, maths, coding, extraction,
knowledge and role-play. ``lamini-lm judge STUDENT --two_turn`` has the student answer both turns (the second with
the first exchange as context) and the judge rate the **last** answer with the dialogue as context.

Example:
    >>> from lamini_lm.evaluation.two_turn import TWO_TURN_SET
    >>> len(TWO_TURN_SET), TWO_TURN_SET[0]["id"]
    (10, 'writing-1')
"""

from __future__ import annotations

__all__ = ["TWO_TURN_SET"]

TWO_TURN_SET: list[dict] = [
    {
        "id": "writing-1",
        "turns": [
            "Write a four-line poem about a lighthouse keeper who has never seen the sea in daylight.",
            "Rewrite your poem so that every line starts with the letter S.",
        ],
    },
    {
        "id": "writing-2",
        "turns": [
            "Draft a short email to a neighbour asking them to water my plants while I am away for a week.",
            "Now make it more formal and add that I will leave the key under the blue flower pot.",
        ],
    },
    {
        "id": "reasoning-1",
        "turns": [
            "Anna is taller than Ben, and Ben is taller than Carl. Who is the shortest of the three?",
            "Dana is shorter than Carl. List all four people from tallest to shortest.",
        ],
    },
    {
        "id": "reasoning-2",
        "turns": [
            "A train leaves at 14:40 and the trip takes 2 hours and 35 minutes. When does it arrive?",
            "The train is delayed by 50 minutes on the way. What is the new arrival time?",
        ],
    },
    {
        "id": "math-1",
        "turns": [
            "What is the sum of the integers from 1 to 20?",
            "Using your previous answer, what is the sum of the even integers from 2 to 40?",
        ],
    },
    {
        "id": "math-2",
        "turns": [
            "A rectangle has a perimeter of 30 cm and one side of 6 cm. What is its area?",
            "If both sides are doubled, by what factor does the area change, and what is the new area?",
        ],
    },
    {
        "id": "coding-1",
        "turns": [
            "Write a Python function that returns True when a string is a palindrome.",
            "Change the function so that it ignores spaces, punctuation and letter case.",
        ],
    },
    {
        "id": "extraction-1",
        "turns": [
            "From this sentence, list every city name: 'We flew from Lisbon to Oslo, then took a bus to Bergen.'",
            "Now give the cities as a JSON list, in the order they were visited.",
        ],
    },
    {
        "id": "knowledge-1",
        "turns": [
            "Explain in two sentences why the sky looks blue during the day.",
            "Then why does it often look red or orange at sunset?",
        ],
    },
    {
        "id": "roleplay-1",
        "turns": [
            "Pretend you are a museum guide. Introduce a painting of a stormy harbour to a group of children.",
            "One child asks why the boats are not sinking. Answer them, staying in your role.",
        ],
    },
]
