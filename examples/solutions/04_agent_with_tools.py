@rx.tool
def convert(celsius: float) -> float:
    """Celsius to Fahrenheit."""
    return celsius * 9 / 5 + 32


converter = rx.Agent(
    "converter",
    model="rxnb/scripted",
    tools=[convert],
    delay=0.0,
    turns=[
        {"tool_calls": [{"name": "convert", "arguments": {"celsius": 21}}]},
        {"script": "21 °C is 69.8 °F."},
    ],
)
