"""Short notes on four distinct topics, written for the organising tests (tags, clusters, search)."""
from __future__ import annotations

TOPICS = {
    "garden": [
        "Planted tomato seedlings and basil in the raised bed by the fence.",
        "The cucumbers need watering every morning during the heat wave.",
        "Buy compost and mulch for the vegetable garden this weekend.",
        "Prune the apple tree before spring and check the roses for aphids.",
        "The zucchini plants are flowering; harvest the first courgettes soon.",
        "Sow carrot and radish seeds in the garden bed after the last frost.",
        "Weed the herb garden and move the mint into its own pot.",
        "Pick ripe strawberries and cover the garden beds with netting against birds.",
    ],
    "money": [
        "Quarterly budget review: cut travel expenses by ten percent.",
        "Pay the electricity invoice and transfer savings to the pension account.",
        "The accountant needs the tax receipts before the end of March.",
        "Compare mortgage interest rates from three banks before renewing.",
        "Monthly spending report: groceries and rent took most of the salary.",
        "Cancel the unused streaming subscriptions to save money each month.",
        "Review the invoice from the contractor; the payment is due next week.",
        "Set up an emergency fund with three months of expenses in savings.",
    ],
    "music": [
        "Practise the guitar chords for the new song before band rehearsal.",
        "The piano needs tuning before the recital next month.",
        "Learn the drum pattern for the jazz standard we play on Friday.",
        "Buy new strings for the violin and rosin for the bow.",
        "Record the vocal harmonies for the chorus in the home studio.",
        "The orchestra concert programme includes a Beethoven symphony.",
        "Write lyrics for the second verse and try a minor key melody.",
        "Tune the bass guitar and rehearse the setlist for the gig.",
    ],
}
