"""Chess: mate-in-one positions found by search, checked with python-chess.

Positions are drawn at random around a king near the edge and kept only when
python-chess says they are legal and at least one move mates. Difficulty is measured,
not assigned: *easy* boards hold at most 6 pieces; *hard* boards hold at least 10
pieces, exactly one mating move and at least two other checks (decoys); the rest are
*medium*. Half the positions are colour-flipped so Black is to move.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

import chess
from PIL import Image, ImageDraw

from ._render import INK, Canvas
from .base import GeneratedQuestion, base_metadata, check_failure

DOMAIN = "chess"
PROMPT = "{side} can deliver checkmate in one move. Show the winning move."
MAX_DRAWS = 50_000

SQUARE = 60
LEFT, TOP, RIGHT, BOTTOM = 30, 46, 16, 30
WIDTH = LEFT + 8 * SQUARE + RIGHT
HEIGHT = TOP + 8 * SQUARE + BOTTOM
LIGHT, DARK = (240, 217, 181), (181, 136, 99)
MOVE_LIGHT, MOVE_DARK = (205, 210, 106), (170, 162, 58)
MATED = (229, 72, 72)

PIECE_NAMES = {chess.PAWN: "pawn", chess.KNIGHT: "knight", chess.BISHOP: "bishop", chess.ROOK: "rook",
               chess.QUEEN: "queen", chess.KING: "king"}


# --- search -----------------------------------------------------------------------


def mating_moves(board: chess.Board) -> list[chess.Move]:
    mates = []
    for move in board.legal_moves:
        board.push(move)
        if board.is_checkmate():
            mates.append(move)
        board.pop()
    return mates


def _checking_moves(board: chess.Board) -> int:
    return sum(1 for move in board.legal_moves if board.gives_check(move))


def classify(pieces: int, mates: int, checks: int) -> str:
    """The difficulty of a mate-in-one from its measured features."""
    if pieces <= 6:
        return "easy"
    if pieces >= 10 and mates == 1 and checks - mates >= 2:
        return "hard"
    return "medium"


def _extra_pieces(difficulty: str, rng: random.Random) -> int:
    return {"easy": 0, "medium": rng.randint(2, 5), "hard": rng.randint(5, 9)}[difficulty]


def _random_position(rng: random.Random, extra: int, sparse: bool) -> chess.Board:
    """White to move; Black's king near an edge, shielded by a few pawns, White attacking."""
    board = chess.Board(None)
    occupied: set[int] = set()

    def place(piece: chess.Piece, allowed: list[int]) -> None:
        free = [s for s in allowed if s not in occupied]
        if free:
            square = rng.choice(free)
            occupied.add(square)
            board.set_piece_at(square, piece)

    edge = [s for s in chess.SQUARES if chess.square_rank(s) >= 6 or chess.square_file(s) in (0, 7)]
    place(chess.Piece(chess.KING, chess.BLACK), edge)
    bk = next(iter(occupied))
    place(chess.Piece(chess.KING, chess.WHITE), [s for s in chess.SQUARES if chess.square_distance(s, bk) > 1])
    inner = [s for s in chess.SQUARES if 1 <= chess.square_rank(s) <= 6]
    shield = [s for s in inner if chess.square_distance(s, bk) == 1]
    for _ in range(rng.randint(0, 2) if sparse else rng.randint(1, 3)):
        place(chess.Piece(chess.PAWN, chess.BLACK), shield)
    for _ in range(rng.randint(1, 2)):
        kind = rng.choice([chess.QUEEN, chess.ROOK, chess.ROOK, chess.BISHOP, chess.KNIGHT])
        place(chess.Piece(kind, chess.WHITE), list(chess.SQUARES))
    for _ in range(extra):
        color = rng.choice([chess.WHITE, chess.BLACK])
        kind = rng.choice([chess.PAWN, chess.PAWN, chess.KNIGHT, chess.BISHOP, chess.ROOK])
        place(chess.Piece(kind, color), inner if kind == chess.PAWN else list(chess.SQUARES))
    board.turn = chess.WHITE
    return board


def _find_position(rng: random.Random, difficulty: str) -> chess.Board:
    for _ in range(MAX_DRAWS):
        board = _random_position(rng, _extra_pieces(difficulty, rng), sparse=difficulty == "easy")
        if board.status() != chess.STATUS_VALID or board.is_check() or board.is_game_over():
            continue
        mates = mating_moves(board)
        if not mates:
            continue
        if classify(len(board.piece_map()), len(mates), _checking_moves(board)) == difficulty:
            return board.mirror() if rng.random() < 0.5 else board
    raise RuntimeError(f"no {difficulty} mate-in-one found in {MAX_DRAWS} draws")  # pragma: no cover


def _tags(board: chess.Board, move: chess.Move) -> list[str]:
    mover = board.piece_at(move.from_square)
    assert mover is not None
    tags = [f"{PIECE_NAMES[move.promotion or mover.piece_type]} mate"]
    if board.is_capture(move):
        tags.append("capture")
    if move.promotion:
        tags.append("promotion")
    after = board.copy(stack=False)
    after.push(move)
    king = after.king(after.turn)
    assert king is not None
    checkers = after.checkers()
    if len(checkers) > 1:
        tags.append("double check")
    elif move.to_square not in checkers:
        tags.append("discovered check")
    back_rank = 7 if after.turn == chess.BLACK else 0
    if chess.square_rank(king) == back_rank and all(chess.square_rank(s) == back_rank for s in checkers):
        tags.append("back rank")
    return tags


# --- drawing ----------------------------------------------------------------------

# Piece silhouettes on a 100x100 box; each part is (kind, points-or-box). Drawn in order.
_BASE = ("rect", (22, 80, 78, 90))
_SHAPES: dict[int, list[tuple[str, tuple[float, ...]]]] = {
    chess.PAWN: [("poly", (38, 46, 62, 46, 68, 80, 32, 80)), ("ellipse", (50, 33, 13, 13)), _BASE],
    chess.ROOK: [("poly", (32, 40, 68, 40, 70, 80, 30, 80)),
                 ("poly", (26, 16, 36, 16, 36, 24, 45, 24, 45, 16, 55, 16, 55, 24, 64, 24, 64, 16, 74, 16,
                           74, 40, 26, 40)), _BASE],
    chess.KNIGHT: [("poly", (30, 80, 74, 80, 72, 62, 66, 44, 68, 30, 62, 18, 52, 13, 47, 6, 42, 15, 33, 20,
                             20, 42, 18, 52, 26, 57, 38, 47, 44, 50, 32, 66)), _BASE],
    chess.BISHOP: [("poly", (38, 58, 62, 58, 66, 80, 34, 80)), ("ellipse", (50, 40, 16, 21)),
                   ("ellipse", (50, 14, 6, 6)), _BASE],
    chess.QUEEN: [("poly", (30, 80, 70, 80, 84, 30, 66, 54, 58, 22, 50, 52, 42, 22, 34, 54, 16, 30)),
                  ("ellipse", (16, 27, 6, 6)), ("ellipse", (42, 19, 6, 6)), ("ellipse", (58, 19, 6, 6)),
                  ("ellipse", (84, 27, 6, 6)), _BASE],
    chess.KING: [("rect", (45, 4, 55, 30)), ("rect", (37, 10, 63, 19)),
                 ("poly", (30, 80, 70, 80, 80, 40, 66, 30, 34, 30, 20, 40)), _BASE],
}
# Interior lines that make the silhouettes readable (mitre slit, mane, crown band).
_DETAILS: dict[int, list[tuple[float, ...]]] = {
    chess.BISHOP: [(50, 30, 56, 42)],
    chess.KNIGHT: [(50, 20, 60, 40), (36, 30, 38, 32)],
    chess.KING: [(32, 66, 68, 66)],
    chess.QUEEN: [(30, 70, 70, 70)],
    chess.ROOK: [(32, 48, 68, 48)],
}


@lru_cache(maxsize=16)
def _sprite(symbol: str, size: int) -> Image.Image:
    """An RGBA piece image of ``size`` px, anti-aliased (drawn 4x, downsampled)."""
    piece = chess.Piece.from_symbol(symbol)
    k = 4
    big = size * k
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    fill = (250, 250, 250, 255) if piece.color == chess.WHITE else (38, 38, 38, 255)
    edge = (20, 20, 20, 255)
    detail = (20, 20, 20, 255) if piece.color == chess.WHITE else (235, 235, 235, 255)
    u = big / 100.0
    width = max(1, round(3.2 * u))

    def x(v: float) -> float:  # widen a little: the outlines were drawn slim
        return (50 + (v - 50) * 1.15) * u

    def y(v: float) -> float:
        return v * u

    for kind, spec in _SHAPES[piece.piece_type]:
        if kind == "poly":
            pts = [(x(spec[i]), y(spec[i + 1])) for i in range(0, len(spec), 2)]
            draw.polygon(pts, fill=fill, outline=edge, width=width)
        elif kind == "rect":
            draw.rectangle([x(spec[0]), y(spec[1]), x(spec[2]), y(spec[3])], fill=fill, outline=edge,
                           width=width)
        else:
            cx, cy, rx, ry = spec
            draw.ellipse([x(cx - rx * 0.87), y(cy - ry), x(cx + rx * 0.87), y(cy + ry)], fill=fill,
                         outline=edge, width=width)
    for x0, y0, x1, y1 in _DETAILS.get(piece.piece_type, []):
        draw.line([(x(x0), y(y0)), (x(x1), y(y1))], fill=detail, width=width)
    return img.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=None)


def _xy(square: int) -> tuple[int, int]:
    return LEFT + chess.square_file(square) * SQUARE, TOP + (7 - chess.square_rank(square)) * SQUARE


def render(board: chess.Board, caption: str, last_move: chess.Move | None = None) -> Image.Image:
    """The board from White's side with coordinates, a caption, and the last move highlighted."""
    canvas = Canvas(WIDTH, HEIGHT, scale=1)
    mated = board.king(board.turn) if board.is_checkmate() else None
    for square in chess.SQUARES:
        x, y = _xy(square)
        light = (chess.square_file(square) + chess.square_rank(square)) % 2 == 1
        color = LIGHT if light else DARK
        if last_move is not None and square in (last_move.from_square, last_move.to_square):
            color = MOVE_LIGHT if light else MOVE_DARK
        if square == mated:
            color = MATED
        canvas.rect(x, y, x + SQUARE, y + SQUARE, fill=color)
    canvas.rect(LEFT - 2, TOP - 2, LEFT + 8 * SQUARE + 2, TOP + 8 * SQUARE + 2, outline=INK, width=2)
    for i in range(8):
        canvas.text(LEFT + i * SQUARE + SQUARE / 2, TOP + 8 * SQUARE + BOTTOM / 2 + 1, "abcdefgh"[i], 18)
        canvas.text(LEFT / 2, TOP + (7 - i) * SQUARE + SQUARE / 2, str(i + 1), 18)
    canvas.text(WIDTH / 2, TOP / 2, caption, 24)
    img = canvas.image()
    for square, piece in board.piece_map().items():
        x, y = _xy(square)
        sprite = _sprite(piece.symbol(), SQUARE - 2)
        img.paste(sprite, (x + 1, y + 1), sprite)
    return img


# --- the domain interface ---------------------------------------------------------


def generate(rng: random.Random, index: int, difficulty: str) -> GeneratedQuestion:
    board = _find_position(rng, difficulty)
    mates = mating_moves(board)
    sans = sorted(board.san(m) for m in mates)
    shown = board.parse_san(sans[0])
    side = "White" if board.turn == chess.WHITE else "Black"
    prompt = PROMPT.format(side=side)
    final = board.copy(stack=False)
    final.push(shown)
    tags = _tags(board, shown)
    meta = base_metadata(DOMAIN, index, prompt, difficulty)
    meta.update({
        "chess_data": {
            "generation_method": "mate_in_1_search",
            "initial_fen": board.fen(),
            "final_fen": final.fen(),
            "final_move": sans[0],
            "mate_moves": sans,
            "pattern_tags": tags,
            "piece_count": len(board.piece_map()),
            "checking_moves": _checking_moves(board),
        },
        "side_to_move": side.lower(),
        "mate_moves": sans,
        "pattern_description": f"{side} mates in one with a {tags[0].removesuffix(' mate')}"
                               + (f" ({', '.join(tags[1:])})" if len(tags) > 1 else ""),
    })
    first_img = render(board, f"{side} to move")
    final_img = render(final, f"{side} mates: {sans[0]}", last_move=shown)
    return GeneratedQuestion(first_img, final_img, prompt, meta)


def check(metadata: dict[str, Any]) -> None:
    """Re-derive every mate from the FEN; raise ValidationError if the stored answer is wrong."""
    fail = check_failure(DOMAIN, metadata)

    data = metadata["chess_data"]
    board = chess.Board(data["initial_fen"])
    if board.status() != chess.STATUS_VALID:
        fail(f"position is not legal ({board.status()!r})")
    side = "white" if board.turn == chess.WHITE else "black"
    if metadata["side_to_move"] != side:
        fail(f"side_to_move says {metadata['side_to_move']} but the FEN has {side} to move")
    expected = sorted(board.san(m) for m in mating_moves(board))
    if not expected:
        fail("no move mates in this position")
    if data["mate_moves"] != expected or metadata["mate_moves"] != expected:
        fail(f"mate_moves {data['mate_moves']} differ from the mating moves {expected}")
    after = board.copy(stack=False)
    after.push_san(data["final_move"])
    if not after.is_checkmate() or after.fen() != data["final_fen"]:
        fail("final_fen is not the position after the mating final_move")
    if classify(len(board.piece_map()), len(expected), _checking_moves(board)) != metadata["difficulty"]:
        fail("difficulty label does not match the position's measured features")


def dedupe_key(metadata: dict[str, Any]) -> str:
    # The position without move counters: the same placement + side to move is a duplicate.
    return " ".join(metadata["chess_data"]["initial_fen"].split()[:4])
