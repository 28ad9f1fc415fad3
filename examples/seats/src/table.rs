//! [`Table`]: the game's rules, with no Krmx in them: two seats, a 3×3 board, turns.

use serde_json::{Value, json};

/// How many seats the table has.
pub const SEATS: usize = 2;

/// How many cells the board has.
pub const CELLS: usize = 9;

/// The lines that win.
const LINES: [[usize; 3]; 8] = [
    [0, 1, 2],
    [3, 4, 5],
    [6, 7, 8],
    [0, 3, 6],
    [1, 4, 7],
    [2, 5, 8],
    [0, 4, 8],
    [2, 4, 6],
];

/// A bug to put into the rules on purpose, to show that the property tests catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// A seated player may move when it is not their turn.
    TurnUnchecked,
    /// A player may take a second seat.
    SeatTwice,
    /// A player's seat is freed when their connection unlinks, not when they leave.
    FreeSeatOnUnlink,
}

/// Why a request was refused, as the `reason` the player is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// There is no such seat.
    NoSuchSeat,
    /// Someone sits there.
    SeatTaken,
    /// The player already has a seat.
    AlreadySeated,
    /// The player has no seat.
    NotSeated,
    /// Both seats must be taken before anyone moves.
    WaitingForPlayers,
    /// The other player is on turn.
    NotYourTurn,
    /// There is no such cell.
    NoSuchCell,
    /// The cell is marked.
    CellTaken,
    /// The game is over: restart it.
    GameOver,
    /// The game is not over yet.
    GameNotOver,
}

impl Refusal {
    /// The reason sent to the player.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSuchSeat => "no such seat",
            Self::SeatTaken => "seat taken",
            Self::AlreadySeated => "already seated",
            Self::NotSeated => "not seated",
            Self::WaitingForPlayers => "waiting for players",
            Self::NotYourTurn => "not your turn",
            Self::NoSuchCell => "no such cell",
            Self::CellTaken => "cell taken",
            Self::GameOver => "game over",
            Self::GameNotOver => "game not over",
        }
    }
}

/// One move of the current game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// Who moved.
    pub player: String,
    /// The seat they moved from.
    pub seat: usize,
    /// The cell they marked.
    pub cell: usize,
}

/// The table: who sits where, the board, whose turn it is.
#[derive(Debug, Clone, Default)]
pub struct Table {
    seats: [Option<String>; SEATS],
    cells: [Option<usize>; CELLS],
    moves: Vec<Move>,
    winner: Option<usize>,
    bug: Option<Bug>,
}

impl Table {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table with `bug` in its rules.
    #[must_use]
    pub fn with_bug(bug: Bug) -> Self {
        Self {
            bug: Some(bug),
            ..Self::default()
        }
    }

    /// The bug in the rules, if any.
    #[must_use]
    pub fn bug(&self) -> Option<Bug> {
        self.bug
    }

    /// Who sits in each seat.
    #[must_use]
    pub fn seats(&self) -> &[Option<String>; SEATS] {
        &self.seats
    }

    /// The moves of the current game, in order.
    #[must_use]
    pub fn moves(&self) -> &[Move] {
        &self.moves
    }

    /// The seat on turn: seat 0 opens, then they alternate.
    #[must_use]
    pub fn turn(&self) -> usize {
        self.moves.len() % SEATS
    }

    /// The seat of `player`, if seated.
    #[must_use]
    pub fn seat_of(&self, player: &str) -> Option<usize> {
        self.seats.iter().position(|s| s.as_deref() == Some(player))
    }

    fn is_over(&self) -> bool {
        self.winner.is_some() || self.moves.len() == CELLS
    }

    /// `player` takes `seat`.
    ///
    /// # Errors
    /// No such seat, taken, or the player already sits.
    pub fn sit(&mut self, player: &str, seat: usize) -> Result<(), Refusal> {
        if self.seat_of(player).is_some() && self.bug != Some(Bug::SeatTwice) {
            return Err(Refusal::AlreadySeated);
        }
        match self.seats.get_mut(seat) {
            None => Err(Refusal::NoSuchSeat),
            Some(Some(_)) => Err(Refusal::SeatTaken),
            Some(free) => {
                *free = Some(player.to_owned());
                Ok(())
            }
        }
    }

    /// `player` marks `cell`.
    ///
    /// # Errors
    /// Not seated, waiting for the other player, not their turn, game over, no such cell or
    /// taken.
    pub fn play(&mut self, player: &str, cell: usize) -> Result<(), Refusal> {
        let seat = self.seat_of(player).ok_or(Refusal::NotSeated)?;
        if self.seats.iter().any(Option::is_none) {
            return Err(Refusal::WaitingForPlayers);
        }
        if self.is_over() {
            return Err(Refusal::GameOver);
        }
        if seat != self.turn() && self.bug != Some(Bug::TurnUnchecked) {
            return Err(Refusal::NotYourTurn);
        }
        match self.cells.get_mut(cell) {
            None => return Err(Refusal::NoSuchCell),
            Some(Some(_)) => return Err(Refusal::CellTaken),
            Some(free) => *free = Some(seat),
        }
        self.moves.push(Move {
            player: player.to_owned(),
            seat,
            cell,
        });
        let marked = |i: usize| self.cells.get(i).copied().flatten();
        if LINES
            .iter()
            .any(|line| line.iter().all(|&i| marked(i) == Some(seat)))
        {
            self.winner = Some(seat);
        }
        Ok(())
    }

    /// A seated player starts a new game once this one is over.
    ///
    /// # Errors
    /// Not seated, or the game is not over.
    pub fn restart(&mut self, player: &str) -> Result<(), Refusal> {
        self.seat_of(player).ok_or(Refusal::NotSeated)?;
        if !self.is_over() {
            return Err(Refusal::GameNotOver);
        }
        self.clear_board();
        Ok(())
    }

    /// `player` left the server: their seat is freed and the game starts over. Whether anything
    /// changed.
    pub fn stand(&mut self, player: &str) -> bool {
        let mut changed = false;
        for seat in &mut self.seats {
            if seat.as_deref() == Some(player) {
                *seat = None;
                changed = true;
            }
        }
        if changed {
            self.clear_board();
        }
        changed
    }

    fn clear_board(&mut self) {
        self.cells = [None; CELLS];
        self.moves.clear();
        self.winner = None;
    }

    /// The table as the players see it: `seats`, `board` (a seat number or null per cell),
    /// `turn`, `winner` (a seat, `"draw"`, or null).
    #[must_use]
    pub fn state(&self) -> Value {
        let winner = match (self.winner, self.moves.len() == CELLS) {
            (Some(seat), _) => json!(seat),
            (None, true) => json!("draw"),
            (None, false) => Value::Null,
        };
        json!({
            "seats": self.seats,
            "board": self.cells,
            "turn": self.turn(),
            "winner": winner,
        })
    }
}
