"""Word lists for the synthetic story corpus: topic lexicons (places, objects, verbs, adjectives) and shared pools.

Verbs are written "base" for regular ones and "base:past" where the past tense is irregular or doubles a consonant.
"""
from __future__ import annotations

NAMES = """
anna ben clara daniel emma felix grace henry iris jack kate leo lucy martin nora oliver paula quentin rosa samuel
tessa victor wendy xavier yvonne zach alice brian carol david ellen frank helen isaac julia kevin laura michael
nancy oscar peter rachel simon tina walter amber blake connor diana edgar fiona george hannah ivan jasmine karl
lily morgan nathan olivia patrick ruby steven thomas ursula vera william abigail bruno cecilia dennis esther
gordon harriet irene jerome lisa maria nigel owen philip rebecca sophie tobias violet arthur bella caleb daisy
eliza gavin heidi ingrid joseph kira lewis mabel neil opal percy rita stella troy una vincent wanda adrian
beatrice colin dorothy ernest flora gilbert holly jacob lydia miles naomi rupert sylvia theo yara agnes boris
cora dylan edith francis gemma hugo june louis maggie norman pearl ralph sarah tom vivian
""".split()

TIMES = """morning afternoon evening night dawn winter summer spring autumn weekend holiday monday friday""".split()

FEELINGS = """happy tired nervous proud curious calm angry hopeful worried excited lonely grateful surprised
cheerful sleepy brave anxious eager puzzled relieved restless thoughtful gloomy jolly patient""".split()

ADJECTIVES = """old new small large heavy light bright dark quiet noisy warm cold soft hard clean dirty round
square narrow wide long short tall strange simple fancy broken shiny dusty wooden golden silver green blue red
yellow purple brown white black gentle rough smooth sharp empty full fresh ancient modern tiny huge lovely
plain famous secret hidden useful precious fragile sturdy crooked polished rusty faded colourful striped spotted
""".split()

ADVERBS = """slowly quickly quietly carefully happily softly suddenly gently eagerly calmly proudly nervously
bravely loudly patiently silently gladly warmly boldly swiftly lazily neatly politely sadly brightly""".split()

GENERAL_VERBS_T = """found:found saw:saw lifted carried opened closed cleaned painted moved checked counted
held:held dropped:dropped brought:brought bought:bought sold:sold kept:kept showed:showed wrapped:wrapped
touched hid:hid noticed borrowed returned repaired fixed:fixed polished studied:studied admired""".split()

GENERAL_VERBS_I = """smiled laughed waited rested listened whistled sang:sang danced wandered stood:stood sat:sat
walked nodded sighed paused hurried shivered yawned""".split()

# topic -> (places, objects, transitive verbs in the past tense, activity nouns, topic adjectives)
TOPICS: dict[str, dict[str, list[str]]] = {
    "farm": dict(places="barn meadow orchard pasture stable farmhouse field pond henhouse silo".split(),
                 objects="tractor bucket pitchfork lamb calf hay saddle fence plough goat turnip pumpkin".split(),
                 verbs="fed milked harvested planted watered sheared herded gathered".split(),
                 adjectives="muddy rustic sunny grassy".split()),
    "sea": dict(places="harbour beach lighthouse pier dock island cove cliff shore lagoon".split(),
                objects="boat anchor net sail compass shell lantern rope oar crab seagull map".split(),
                verbs="rowed steered anchored fished tied:tied launched sailed mended".split(),
                adjectives="salty sandy windy stormy".split()),
    "kitchen": dict(places="kitchen pantry bakery cellar diner cafe restaurant market canteen larder".split(),
                    objects="kettle teapot oven spoon ladle pan bread soup cake apron onion cheese".split(),
                    verbs="baked boiled stirred:stirred sliced poured tasted chopped:chopped served".split(),
                    adjectives="delicious crispy spicy sweet".split()),
    "school": dict(places="classroom library hallway playground gym office laboratory auditorium corridor schoolyard".split(),
                   objects="pencil notebook chalk globe ruler textbook backpack desk eraser calculator poster bell".split(),
                   verbs="read:read wrote:wrote copied:copied graded solved erased explained memorised".split(),
                   adjectives="clever difficult tidy strict".split()),
    "forest": dict(places="forest clearing glade thicket grove ravine trail stream woods hollow".split(),
                   objects="acorn mushroom branch pinecone fox owl deer squirrel log moss berry fern".split(),
                   verbs="followed tracked picked climbed explored photographed sketched collected".split(),
                   adjectives="leafy shady misty wild".split()),
    "city": dict(places="street square station subway bridge avenue tower mall cinema alley".split(),
                 objects="taxi ticket umbrella newspaper bicycle bus sign statue fountain coffee elevator scooter".split(),
                 verbs="crossed hailed rode:rode parked visited passed missed caught:caught".split(),
                 adjectives="busy crowded noisy urban".split()),
    "music": dict(places="concert hall studio stage theatre bandstand club chapel rehearsal room opera".split(),
                  objects="violin piano guitar drum trumpet flute cello harp melody song microphone score".split(),
                  verbs="played tuned practised composed recorded hummed strummed:strummed performed".split(),
                  adjectives="musical loud harmonic rhythmic".split()),
    "space": dict(places="rocket observatory launchpad station crater moon orbit planet galaxy capsule".split(),
                  objects="telescope helmet satellite comet asteroid probe radio spacesuit engine star meteor console".split(),
                  verbs="launched observed orbited measured signalled:signalled docked scanned:scanned charted".split(),
                  adjectives="cosmic distant lunar starry".split()),
    "garden": dict(places="garden greenhouse hedge allotment patio lawn shed flowerbed terrace courtyard".split(),
                   objects="rose tulip shovel rake seed hose wheelbarrow daisy sunflower vine snail bench".split(),
                   verbs="weeded pruned trimmed:trimmed dug:dug sowed raked mowed fertilised".split(),
                   adjectives="blooming fragrant leafy tidy".split()),
    "mountain": dict(places="mountain summit valley glacier peak ridge cabin lodge slope pass".split(),
                     objects="rope ice axe boots tent backpack goat eagle avalanche map flag torch".split(),
                     verbs="climbed hiked crossed camped reached descended pitched scaled".split(),
                     adjectives="steep snowy rocky icy".split()),
    "hospital": dict(places="hospital clinic ward pharmacy surgery ambulance waiting room laboratory corridor".split(),
                     objects="bandage stethoscope thermometer medicine bed wheelchair syringe chart patient doctor nurse pill".split(),
                     verbs="examined treated healed bandaged comforted measured prescribed nursed".split(),
                     adjectives="sterile healthy sick careful".split()),
    "train": dict(places="platform railway carriage tunnel depot junction viaduct signal box terminus yard".split(),
                  objects="locomotive whistle ticket timetable luggage suitcase conductor engine wagon track lamp clock".split(),
                  verbs="boarded waved punched:punched announced delayed shunted loaded unloaded".split(),
                  adjectives="late punctual steamy rattling".split()),
    "castle": dict(places="castle tower dungeon courtyard moat throne room armoury drawbridge keep battlement".split(),
                   objects="sword shield crown banner knight dragon key candle tapestry goblet armour scroll".split(),
                   verbs="guarded defended crowned unlocked besieged polished raised forged".split(),
                   adjectives="royal noble ancient gloomy".split()),
    "market": dict(places="market stall shop bazaar warehouse counter fair arcade grocer boutique".split(),
                   objects="basket coin purse scale apple carrot melon fish carpet necklace receipt crate".split(),
                   verbs="traded weighed bargained paid:paid priced stacked displayed packed".split(),
                   adjectives="cheap expensive ripe fresh".split()),
    "weather": dict(places="hilltop porch window rooftop valley meadow plain coast village veranda".split(),
                    objects="cloud rain thunder lightning rainbow snowflake breeze fog puddle raincoat kite hailstone".split(),
                    verbs="watched predicted measured recorded ignored feared welcomed described".split(),
                    adjectives="cloudy rainy foggy frosty".split()),
    "sports": dict(places="stadium court pitch track arena pool rink gymnasium field clubhouse".split(),
                   objects="ball racket trophy whistle helmet medal goal net jersey skate bat glove".split(),
                   verbs="kicked threw:threw caught:caught won:won scored trained coached cheered".split(),
                   adjectives="athletic fast strong sporty".split()),
    "art": dict(places="gallery studio museum workshop attic exhibition atelier loft school street".split(),
                objects="canvas brush easel palette portrait sculpture clay chisel frame crayon mural sketchbook".split(),
                verbs="painted sketched carved framed mixed:mixed sculpted exhibited restored".split(),
                adjectives="artistic vivid abstract elegant".split()),
    "science": dict(places="laboratory lab greenhouse basement observatory institute classroom workshop tent vault".split(),
                    objects="microscope beaker magnet crystal battery wire circuit robot fossil sample formula lens".split(),
                    verbs="tested analysed invented:invented heated cooled weighed discovered assembled".split(),
                    adjectives="electric magnetic precise curious".split()),
    "travel": dict(places="airport hotel border village harbour resort campsite museum bazaar temple".split(),
                   objects="passport suitcase postcard camera guidebook souvenir backpack ticket map train plane hat".split(),
                   verbs="packed booked toured photographed unpacked visited explored changed".split(),
                   adjectives="foreign exotic distant scenic".split()),
    "winter": dict(places="chalet fireplace hill lake igloo cottage rink sleigh path porch".split(),
                   objects="snowman scarf mitten sledge blanket cocoa firewood icicle skis boots snowball stove".split(),
                   verbs="built:built shovelled knitted:knitted lit:lit warmed skated sledged chopped:chopped".split(),
                   adjectives="frozen chilly snowy cosy".split()),
    "animals": dict(places="zoo pond den nest burrow aviary kennel jungle savanna aquarium".split(),
                    objects="puppy kitten parrot rabbit tortoise lion elephant giraffe hamster monkey penguin zebra".split(),
                    verbs="petted:petted chased groomed trained rescued adopted walked fed:fed".split(),
                    adjectives="furry playful fluffy loyal".split()),
    "workshop": dict(places="workshop garage factory forge shed basement yard mill foundry depot".split(),
                     objects="hammer nail saw drill screw plank toolbox ladder bolt wrench bench glue".split(),
                     verbs="hammered sawed drilled sanded welded glued measured tightened".split(),
                     adjectives="sturdy rusty wooden metal".split()),
    "river": dict(places="river bank ferry canal waterfall bridge marsh mill delta jetty".split(),
                  objects="canoe paddle fishing rod frog heron duck raft pebble reed kingfisher otter bottle".split(),
                  verbs="paddled floated swam:swam waded crossed skipped:skipped spotted:spotted netted:netted".split(),
                  adjectives="muddy shallow rushing calm".split()),
    "birthday": dict(places="parlour party house garden restaurant hall bowling alley park diner ballroom".split(),
                     objects="balloon candle present ribbon card cupcake invitation confetti cake hat song game".split(),
                     verbs="celebrated decorated wrapped:wrapped blew:blew invited unwrapped sang:sang opened".split(),
                     adjectives="festive joyful surprising colourful".split()),
}

FUNCTION_WORDS = """the a and to of in on at with by near beside behind under over into from for because but
then so when while after before was were had his her their there it they he she we this that very""".split()

# Things any story may mention beside its topic objects (keeps the vocabulary above 1,500 words).
COMMON_OBJECTS = """letter box bag jar bottle cup plate bowl chair table lamp mirror clock watch ring bracelet
button pocket coat jacket sweater shirt shoe sock glove blanket pillow curtain carpet rug basket parcel envelope
photograph picture book diary journal poem story recipe puzzle riddle toy doll marble kite whistle feather ribbon
string thread needle button stone pebble shell leaf flower twig candle match torch lantern key lock door gate
window wall roof chimney stair ladder fence path road hill tree bush hedge cart wagon wheel barrel sack tray
towel soap brush comb vase jug pot kettle sandwich biscuit apple pear plum orange lemon cherry grape walnut
honey jam butter milk tea juice cookie pie muffin carrot potato pea bean mushroom pepper tomato cucumber
radio telephone camera computer keyboard screen cable battery bulb motor engine wheelbarrow trolley
umbrella helmet badge medal coin note cheque stamp sticker pin clip folder drawer shelf cupboard wardrobe
cushion quilt hammock tent flag banner sign notice poster calendar map globe compass anchor bell drum flute
""".split()

MORE_ADJECTIVES = """enormous little massive slim thick thin hollow solid damp dry wet sticky fuzzy shaggy silky
glossy dull pale rosy scarlet crimson orange pink grey ivory amber lavender emerald cheerful grumpy lucky
unusual ordinary peculiar mysterious familiar favourite borrowed spare extra missing lost forgotten perfect
handsome pretty ugly graceful clumsy lively sleepy busy idle kind friendly generous honest humble wise silly
""".split()

MORE_ADVERBS = """carefully slowly again almost always often rarely finally nearly soon later today yesterday
together alone outside inside upstairs downstairs everywhere somewhere""".split()

TOPICS.update({
    "circus": dict(places="circus tent ring caravan trailer fairground sideshow arena grandstand wagon".split(),
                   objects="clown juggler acrobat trapeze unicycle tightrope popcorn elephant lion hoop costume ringmaster".split(),
                   verbs="juggled balanced tumbled applauded rehearsed announced startled amazed".split(),
                   adjectives="dazzling daring comical spectacular".split()),
    "desert": dict(places="desert dune oasis canyon mesa camp well plateau ruins caravanserai".split(),
                   objects="camel cactus lizard scorpion canteen turban sandstorm compass mirage tent rug waterskin".split(),
                   verbs="trekked sheltered searched rationed guided saddled crossed endured".split(),
                   adjectives="dusty scorching barren parched".split()),
    "office": dict(places="office boardroom lobby reception cubicle archive elevator printer room canteen basement".split(),
                   objects="stapler folder laptop printer spreadsheet memo briefcase badge contract invoice deadline projector".split(),
                   verbs="typed printed filed signed emailed scheduled photocopied reviewed".split(),
                   adjectives="formal urgent boring efficient".split()),
    "camping": dict(places="campsite lakeside riverbank hillside meadow woodland cave shelter trailhead bonfire".split(),
                    objects="sleeping bag flashlight marshmallow kettle hatchet cooler hammock canteen stove firewood mosquito whistle".split(),
                    verbs="pitched:pitched roasted gathered unrolled zipped:zipped boiled hiked kindled".split(),
                    adjectives="smoky damp peaceful remote".split()),
    "museum": dict(places="museum gallery exhibit vault archive rotunda basement wing atrium hall".split(),
                   objects="dinosaur skeleton mummy vase painting helmet coin manuscript mosaic pottery artefact catalogue".split(),
                   verbs="studied:studied catalogued dusted labelled guarded inspected borrowed admired".split(),
                   adjectives="priceless historic delicate dusty".split()),
    "harvest": dict(places="vineyard granary mill cornfield orchard barn cellar village green farmyard storehouse".split(),
                    objects="grapes wheat barley corn sickle scythe cider basket pumpkin squash apples haystack".split(),
                    verbs="reaped threshed:threshed pressed stored bundled loaded ground:ground shared".split(),
                    adjectives="golden plentiful ripe autumnal".split()),
})

COMMON_OBJECTS += """napkin fork knife spoon saucer teacup mug glass ladle whisk sieve oven fridge sofa armchair stool
piano violin trumpet guitar harmonica banjo accordion tambourine xylophone recorder
hat cap bonnet scarf belt boot slipper sandal apron overall uniform costume mask wig crown
rope chain hook wire spring screw bolt magnet lens mirror prism marble crystal pearl diamond ruby sapphire
acorn chestnut pinecone seashell starfish sponge coral fossil skeleton bone horn tusk claw paw whisker
postman baker farmer sailor teacher doctor painter tailor miner pilot chef gardener fisherman shepherd
""".split()

FEELINGS += """content delighted uneasy sheepish jealous embarrassed confident amazed glad bored frightened
determined""".split()

GENERAL_VERBS_T += """grabbed:grabbed shook:shook wiped dried:dried folded rolled buried:buried hugged:hugged
tossed stroked squeezed shared weighed sniffed guarded measured sorted traced scrubbed:scrubbed""".split()
GENERAL_VERBS_I += """giggled frowned blinked coughed sneezed stretched trembled grinned:grinned hummed:hummed
shrugged:shrugged""".split()
MORE_ADJECTIVES += """brave clever cosy crisp curly fierce gleaming jagged knitted lumpy marvellous mossy nimble
prickly quaint sparkly tangled velvet wobbly woolly zesty battered bumpy chipped creaky""".split()
